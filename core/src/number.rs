//! How numbers are written into files for machines: the shortest decimal that reads back as the
//! same `f64`, in the form the `csv` crate's serialiser uses, so every CSV emobench writes agrees
//! with its serde-written ones and loads in pandas, R and polars with default options.

/// The shortest string that parses back to exactly `v` (`ryu`; `NaN`, `inf`, `-inf` as such).
pub fn shortest(v: f64) -> String {
    ryu::Buffer::new().format(v).to_string()
}

/// [`shortest`], with an empty field for a missing value (NaN), which pandas and R read as NA.
pub fn shortest_or_empty(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else {
        shortest(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_reads_back_exactly() {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..10_000 {
            // xorshift64 bit patterns cover subnormals, huge and tiny exponents alike.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if v.is_finite() {
                assert_eq!(shortest(v).parse::<f64>().unwrap().to_bits(), v.to_bits());
            }
        }
        assert_eq!(shortest(0.1), "0.1");
        assert_eq!(shortest_or_empty(f64::NAN), "");
    }
}
