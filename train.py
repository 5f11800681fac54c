"""Train or evaluate a prompt learner (CoOp/Dassl's ``train.py`` command line).

    python train.py --root DATA --trainer CoOp --dataset-config-file configs/datasets/oxford_pets.yaml \
        --config-file configs/trainers/CoOp/vit_b16_ep50.yaml --output-dir output/pets/seed1 --seed 1 \
        DATASET.NUM_SHOTS 16

Trailing ``KEY VALUE`` pairs override the config. The lifecycle (finished-run check, lock, resume, train or test) is
:mod:`engine.launch`; user mistakes print one ``error:`` line and exit with status 2 (``--debug`` for the traceback).
"""
import sys

from engine.launch import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("Interrupted; completed epochs are saved in the output directory and the same command resumes.",
              file=sys.stderr)
        sys.exit(130)
