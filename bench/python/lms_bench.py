"""Reference side of the LMS language-model speed comparison (emobench: `cargo bench -p
emobench-models --bench gguf_llm`): prompt processing and generation tokens/s of a GGUF model
(SmolLM2-135M-Instruct Q4_1) with llama.cpp (llama-cpp-python, its own Q4_1 x Q8 kernels) or
transformers (`gguf_file=`: dequantised to dense float32), on the CPU with `--threads` threads.

Same work as the Rust bench: the paper's question for a demo caption rendered with the model's
chat template; each repeat runs the prompt from an empty cache, then `--tokens` single-token
forward passes on the greedy token (no stop), timed in wall and process CPU time
(`resource.getrusage`). `bench/lms/run.sh` runs every side back to back.

    python lms_bench.py --backend llamacpp|transformers --model F.gguf [--tokens 32]
        [--repeats 5] [--threads 2] [--json out.json]
    python lms_bench.py --backend transformers --model F.gguf --blip tiny_blip/   # + BLIP caption
"""
import argparse
import json
import os
import pathlib
import resource
import statistics
import time

import numpy as np

CAPTION = "a close up of a cat with green eyes"
EMOTION = "fear"
PAPER_PROMPT = ("There is an image with [Image caption]. To make me feel [Target Emotion], how to "
                "change the image? Give one instruction that starts with an action.")


def cpu_secs():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rendered_prompt(model_path):
    """The chat-templated prompt and its ids, from transformers' tokenizer of the GGUF (the
    reference emobench's tokenizer and template are tested against)."""
    from transformers import AutoTokenizer
    folder, name = os.path.split(os.path.abspath(model_path))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    user = PAPER_PROMPT.replace("[Image caption]", CAPTION).replace("[Target Emotion]", EMOTION)
    text = tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                   add_generation_prompt=True)
    return text, tok(text, add_special_tokens=False)["input_ids"]


class LlamaCpp:
    def __init__(self, path, threads):
        import llama_cpp
        self.version = llama_cpp.__version__
        self.llm = llama_cpp.Llama(model_path=path, n_threads=threads, n_threads_batch=threads,
                                   n_ctx=512, n_batch=512, logits_all=False, verbose=False)

    def tokenize(self, text):
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def logits(self):
        # Without logits_all, Llama.eval keeps no scores: read the last position's logits.
        ptr = self.llm._ctx.get_logits()
        return np.ctypeslib.as_array(ptr, shape=(self.llm.n_vocab(),)).copy()

    def prompt(self, ids):
        self.llm.reset()
        self.llm.eval(ids)
        return self.logits()

    def step(self, token):
        self.llm.eval([token])
        return self.logits()


class Transformers:
    def __init__(self, path, threads):
        import torch
        import transformers
        from transformers import AutoModelForCausalLM
        torch.set_num_threads(threads)
        self.torch = torch
        self.version = f"transformers {transformers.__version__}, torch {torch.__version__}"
        folder, name = os.path.split(os.path.abspath(path))
        self.model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
                                                          dtype=torch.float32).eval()
        self.past = None

    def tokenize(self, text):
        return None

    def prompt(self, ids):
        with self.torch.no_grad():
            out = self.model(self.torch.tensor([ids]), use_cache=True)
        self.past = out.past_key_values
        return out.logits[0, -1].numpy()

    def step(self, token):
        with self.torch.no_grad():
            out = self.model(self.torch.tensor([[token]]), past_key_values=self.past,
                             use_cache=True)
        self.past = out.past_key_values
        return out.logits[0, -1].numpy()


def blip_caption_ms(folder, threads):
    import torch
    from PIL import Image
    from transformers import BlipForConditionalGeneration, BlipImageProcessor
    torch.set_num_threads(threads)
    blip = BlipForConditionalGeneration.from_pretrained(folder).eval()
    proc = BlipImageProcessor(size={"height": 384, "width": 384})
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8))
    with torch.no_grad():
        blip.generate(**proc(img, return_tensors="pt"))
        t = time.perf_counter()
        for _ in range(5):
            blip.generate(**proc(img, return_tensors="pt"))
    return (time.perf_counter() - t) * 200


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["llamacpp", "transformers"], required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blip")
    ap.add_argument("--json")
    a = ap.parse_args()

    text, ids = rendered_prompt(a.model)
    t = time.perf_counter()
    side = (LlamaCpp if a.backend == "llamacpp" else Transformers)(a.model, a.threads)
    load_s = time.perf_counter() - t
    own = side.tokenize(text)
    if own is not None and list(own) != list(ids):
        raise SystemExit(f"{a.backend} tokenises the prompt differently: {own} vs {ids}")

    logits = side.prompt(ids)  # warm-up
    side.step(int(np.argmax(logits)))
    runs, gen = [], []
    for _ in range(a.repeats):
        w0, c0 = time.perf_counter(), cpu_secs()
        logits = side.prompt(ids)
        prompt_s, prompt_cpu = time.perf_counter() - w0, cpu_secs() - c0
        w1, c1 = time.perf_counter(), cpu_secs()
        gen = []
        for _ in range(a.tokens):
            nxt = int(np.argmax(logits))
            gen.append(nxt)
            logits = side.step(nxt)
        gen_s, gen_cpu = time.perf_counter() - w1, cpu_secs() - c1
        print(f"  prompt {len(ids) / prompt_s:.1f} tok/s ({prompt_s:.3f} s, {prompt_cpu:.3f} s CPU); "
              f"generation {a.tokens / gen_s:.1f} tok/s ({gen_s:.3f} s, {gen_cpu:.3f} s CPU)",
              flush=True)
        runs.append(dict(prompt_s=prompt_s, prompt_cpu_s=prompt_cpu, gen_s=gen_s,
                         gen_cpu_s=gen_cpu))
    out = dict(
        side=a.backend, version=side.version,
        mode="llama.cpp Q4_1 x Q8 kernels" if a.backend == "llamacpp" else "dense f32 (gguf_file=)",
        model=os.path.basename(a.model), threads=a.threads, prompt_tokens=len(ids),
        gen_tokens=a.tokens, load_s=load_s, runs=runs,
        prompt_tok_s_median=len(ids) / statistics.median(r["prompt_s"] for r in runs),
        gen_tok_s_median=a.tokens / statistics.median(r["gen_s"] for r in runs),
        prompt_ids=list(ids), generated_ids=gen,
    )
    if a.blip:
        out["blip_caption_ms"] = blip_caption_ms(a.blip, a.threads)
    print(json.dumps({k: v for k, v in out.items() if k not in ("prompt_ids", "generated_ids")}))
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
