//! Runs several callback-driven loops in lockstep so that their expensive steps share one
//! batched call.
//!
//! EmoEditor's critic ([`super::critic::run_critic`]) drives its diffusion passes through a
//! callback, and each image needs a different, data-dependent number of passes. Rather than
//! turning the critic inside out, every image's loop runs on its own thread; a pass *submits*
//! its input and blocks, and the coordinator (the calling thread) runs one batch as soon as every
//! unfinished loop has submitted, then hands each its result. Rows are ordered by job index, so
//! the batches, and the bytes out, depend only on the inputs.

use std::fmt;
use std::sync::mpsc;

/// Why a submitted step got no result.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchError<E> {
    /// The batched call failed; every job of its round gets the same error.
    Exec(E),
    /// The coordinator stopped before answering.
    Stopped,
    /// The batched call returned the wrong number of results.
    Count {
        /// Inputs in the batch.
        count: usize,
        /// Results returned.
        got: usize,
    },
}

impl<E: fmt::Display> fmt::Display for BatchError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Exec(e) => e.fmt(f),
            BatchError::Stopped => f.write_str("the batch coordinator stopped"),
            BatchError::Count { count, got } => {
                write!(f, "a batch of {count} returned {got} results")
            }
        }
    }
}

enum Msg<J, R, E> {
    Submit(usize, J, mpsc::Sender<Result<R, BatchError<E>>>),
    Done,
}

/// Tells the coordinator that a job finished, also when it panicked.
struct DoneGuard<J, R, E>(mpsc::Sender<Msg<J, R, E>>);

impl<J, R, E> Drop for DoneGuard<J, R, E> {
    fn drop(&mut self) {
        let _ = self.0.send(Msg::Done);
    }
}

/// A job's way to hand one step's input to the batch and wait for its result.
pub type Submit<'a, J, R, E> = &'a mut dyn FnMut(J) -> Result<R, BatchError<E>>;

/// Runs `job(i, submit)` for `i` in `0..n`, each on its own thread; every round, the inputs that
/// all unfinished jobs submitted go to `exec` together (in job order) and each job gets its own
/// result back. An `exec` error is returned to every job of that round. Returns the jobs'
/// results in order.
pub fn lockstep<J, R, T, E>(
    n: usize,
    job: impl Fn(usize, Submit<'_, J, R, E>) -> T + Sync,
    mut exec: impl FnMut(Vec<J>) -> Result<Vec<R>, E>,
) -> Vec<T>
where
    J: Send,
    R: Send,
    T: Send,
    E: Clone + Send,
{
    let (tx, rx) = mpsc::channel::<Msg<J, R, E>>();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let tx = tx.clone();
                let job = &job;
                s.spawn(move || {
                    let _done = DoneGuard(tx.clone());
                    let mut submit = |x: J| -> Result<R, BatchError<E>> {
                        let (reply, result) = mpsc::channel();
                        tx.send(Msg::Submit(i, x, reply))
                            .map_err(|_| BatchError::Stopped)?;
                        result.recv().map_err(|_| BatchError::Stopped)?
                    };
                    job(i, &mut submit)
                })
            })
            .collect();
        drop(tx);
        let mut active = n;
        while active > 0 {
            let mut waiting = Vec::with_capacity(active);
            while waiting.len() < active {
                match rx.recv() {
                    Ok(Msg::Submit(i, x, reply)) => waiting.push((i, x, reply)),
                    Ok(Msg::Done) => active -= 1,
                    Err(_) => {
                        active = 0;
                        break;
                    }
                }
            }
            if waiting.is_empty() {
                continue;
            }
            waiting.sort_by_key(|w| w.0);
            let (xs, replies): (Vec<J>, Vec<_>) =
                waiting.into_iter().map(|(_, x, r)| (x, r)).unzip();
            let count = xs.len();
            match exec(xs) {
                Ok(rs) if rs.len() == count => {
                    for (r, reply) in rs.into_iter().zip(replies) {
                        let _ = reply.send(Ok(r));
                    }
                }
                Ok(rs) => {
                    let got = rs.len();
                    for reply in replies {
                        let _ = reply.send(Err(BatchError::Count { count, got }));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(BatchError::Exec(e.clone())));
                    }
                }
            }
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Job i submits i + 1 steps; every round batches exactly the jobs still running, in order,
    /// and each job sees its own results.
    #[test]
    fn rounds_batch_the_unfinished_jobs_in_order() {
        let mut rounds = Vec::new();
        let out = lockstep(
            4,
            |i, submit| {
                let mut got = Vec::new();
                for k in 0..=i {
                    got.push(submit(10 * i + k).expect("result"));
                }
                got
            },
            |xs: Vec<usize>| -> Result<Vec<usize>, String> {
                rounds.push(xs.clone());
                Ok(xs.iter().map(|x| x * 2).collect())
            },
        );
        assert_eq!(
            rounds,
            vec![
                vec![0, 10, 20, 30],
                vec![11, 21, 31],
                vec![22, 32],
                vec![33]
            ]
        );
        assert_eq!(out[2], vec![40, 42, 44]);
    }

    #[test]
    fn an_exec_error_reaches_every_job_of_its_round() {
        let out = lockstep(
            3,
            |i, submit| submit(i).map_err(|e| format!("job {i}: {e}")),
            |_: Vec<usize>| Err::<Vec<usize>, _>("out of memory".to_string()),
        );
        assert_eq!(out[1], Err("job 1: out of memory".to_string()));
    }
}
