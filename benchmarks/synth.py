"""`cdk synth` wall time of the workbench against a one-resource CDK Python app, alternated.

Run: .venv/bin/python benchmarks/synth.py [rounds]. Prints each pair and the median ratio.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONE_RESOURCE_APP = """
import aws_cdk as cdk
from aws_cdk import aws_sns as sns
app = cdk.App()
sns.Topic(cdk.Stack(app, "OneResource"), "Topic")
app.synth()
"""


def timed_synth(app_dir: Path, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([str(ROOT / "node_modules/.bin/cdk"), "synth", "--quiet", "--output", str(out)],
                   cwd=app_dir, check=True, capture_output=True,
                   env={**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"})
    return time.perf_counter() - started


def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        baseline = Path(scratch) / "baseline"
        baseline.mkdir()
        (baseline / "app.py").write_text(ONE_RESOURCE_APP)
        (baseline / "cdk.json").write_text(f'{{"app": "{sys.executable} app.py"}}')
        ratios = []
        for index in range(rounds):
            workbench = timed_synth(ROOT, Path(scratch) / "out-workbench")
            one = timed_synth(baseline, Path(scratch) / "out-baseline")
            ratios.append(workbench / one)
            print(f"round {index + 1}: workbench {workbench:.2f} s, one-resource {one:.2f} s, ratio {ratios[-1]:.2f}")
        print(f"median ratio {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
