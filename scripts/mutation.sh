#!/usr/bin/env bash
# Mutation testing of the core modules ([tool.mutmut] in pyproject.toml), run by hand:
#   bash scripts/mutation.sh            # every module, about 10 minutes on 2 cores
# Prints the score per module; `mutmut results` lists the survivors, `mutmut show NAME` one.
# docs/testing.md records the scores and why each listed survivor is left.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q "mutmut>=3.3,<4"
rm -rf mutants
# the mutated copy in mutants/src must shadow the installed (editable) package
# one thread per worker: thread pools made before a fork deadlock in the forked worker
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=src mutmut run --max-children "${JOBS:-2}" > mutants.log 2>&1 || {
    tail -c 2000 mutants.log
    exit 1
}
python3 scripts/mutation_score.py
