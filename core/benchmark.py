"""``python -m core.benchmark``: the benchmark command (core.evaluation.benchmark), kept at this path
because scripts and outside checks call it. ``--train`` (retrain the CNN first) is wired here, above
both packages: core.training evaluates with core.evaluation's metrics, so core.evaluation must not
import core.training."""
from core.evaluation.benchmark import main as _main


def main(argv=None) -> int:
    from core.training import cnn as cnn_training

    return _main(argv, train_cnn=cnn_training.main)


if __name__ == "__main__":
    raise SystemExit(main())
