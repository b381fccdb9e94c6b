"""Regenerate tests/evaluation/regression_benchmark.json: `python -m tools.make_regression`."""
import json
from pathlib import Path

from core.evaluation import benchmark

if __name__ == "__main__":
    result = benchmark.run(n_test=12, details=False)
    out = {f"{c['family']}/{c['mask']}": {"observed_fraction": c["observed_fraction"],
                                          "rmse": {m: round(s["mean"], 6) for m, s in c["rmse"].items()}}
           for c in result["cells"]}
    path = Path(__file__).resolve().parent.parent / "tests" / "evaluation" / "regression_benchmark.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
