# Developer recipes. The README's two commands need none of these (`cargo install just --locked`).

# The demo on bundled data.
demo:
    cargo run --release -- demo

# Every test, as CI runs them.
test:
    cargo test --workspace

# What CI runs, including the Chromium install for the web-page test.
ci:
    bash .ci/run

# Formatting and lints, as required before a commit.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Rust side of the speed comparison (writes bench/out/rust.json).
bench:
    cargo bench --bench pipeline

# Python side of the speed comparison (needs torch, grad-cam, opencv, scikit-image in a venv).
bench-python:
    python3 bench/python/reference_bench.py

# Regenerate the PyTorch/OpenCV/scikit-image reference fixtures (needs a venv with torch; ~3 GB).
fixtures-torch:
    python3 tests/fixtures/torch/make_fixtures.py

# Regenerate the image-processing fixtures (Pillow, OpenCV, scikit-image; no torch).
fixtures-imgproc:
    python3 tests/fixtures/imgproc/make_fixtures.py

# Regenerate the colour-transfer fixtures (GNU Octave + a checkout of frcs/colour-transfer).
fixtures-ct reference:
    python3 baselines/tests/fixtures/make_ct_fixtures.py --reference {{reference}}

# Regenerate the statistics fixtures (SciPy, statsmodels) and the messy MTurk golden files.
fixtures-study:
    python3 tests/fixtures/study/make_fixtures.py
    python3 tests/fixtures/study/make_messy_mturk.py

# The 100-replication bootstrap coverage check of the human-study analysis (slow).
study-coverage:
    cargo test --release --test study_analyse -- --ignored

# Timing of the image kernels against nothing but themselves (release).
imgproc-timing:
    cargo test --release --test imgproc -- --ignored --nocapture
