"""Default configuration: Dassl's key tree (``dassl/config/defaults.py``) for the keys the CoOp family uses.

Values are Dassl's defaults unless a comment says otherwise, so a CoOp/MaPLe YAML merges unchanged. In particular
SGD runs with momentum 0.9 and weight decay 5e-4, which CoOp-family configs never override (docs/OFFICIAL_CODE.md).
Trainer-specific nodes (``TRAINER.<NAME>``) are added by each trainer's ``extend_cfg`` (see ``engine.config.setup``).
"""
from yacs.config import CfgNode as CN

_C = CN()

_C.VERSION = 1
_C.OUTPUT_DIR = "./output"  # directory of the run: log.txt, metrics.jsonl, results.json, checkpoints
_C.RESUME = ""  # checkpoint directory to resume from (default: OUTPUT_DIR itself)
_C.SEED = -1  # negative: no seeding; 0 is a valid seed (unlike CoOp's train.py)
_C.USE_CUDA = True  # use a GPU when one is available
_C.DETERMINISTIC = False  # deterministic algorithms / no cudnn.benchmark (slower on GPU)
_C.VERBOSE = True

###########################
# Input
###########################
_C.INPUT = CN()
_C.INPUT.SIZE = (224, 224)
_C.INPUT.INTERPOLATION = "bilinear"  # bilinear, bicubic or nearest; CoOp-family configs set bicubic
_C.INPUT.TRANSFORMS = ()  # training transforms, e.g. ("random_resized_crop", "random_flip", "normalize")
_C.INPUT.NO_TRANSFORM = False
_C.INPUT.PIXEL_MEAN = [0.485, 0.456, 0.406]  # ImageNet statistics; CoOp-family configs set CLIP's
_C.INPUT.PIXEL_STD = [0.229, 0.224, 0.225]
_C.INPUT.CROP_PADDING = 4
_C.INPUT.RRCROP_SCALE = (0.08, 1.0)
_C.INPUT.CUTOUT_N = 1
_C.INPUT.CUTOUT_LEN = 16
_C.INPUT.GN_MEAN = 0.0
_C.INPUT.GN_STD = 0.15
_C.INPUT.RANDAUGMENT_N = 2
_C.INPUT.RANDAUGMENT_M = 10
_C.INPUT.COLORJITTER_B = 0.4
_C.INPUT.COLORJITTER_C = 0.4
_C.INPUT.COLORJITTER_S = 0.4
_C.INPUT.COLORJITTER_H = 0.1
_C.INPUT.RGS_P = 0.2
_C.INPUT.GB_P = 0.5
_C.INPUT.GB_K = 21

###########################
# Dataset
###########################
_C.DATASET = CN()
_C.DATASET.ROOT = ""  # dataset root ($DATA in CoOp's scripts)
_C.DATASET.NAME = ""  # registered dataset name, e.g. OxfordPets
_C.DATASET.SOURCE_DOMAINS = ()
_C.DATASET.TARGET_DOMAINS = ()
_C.DATASET.NUM_LABELED = -1
_C.DATASET.NUM_SHOTS = -1  # shots per class; < 1 means all training data
_C.DATASET.VAL_PERCENT = 0.1
_C.DATASET.SUBSAMPLE_CLASSES = "all"  # all, base (first ceil(n/2) labels) or new (the rest); CoOp's extend_cfg
_C.DATASET.TEMPLATE = ""  # hand-written prompt template, e.g. "a photo of a {}."; "" = the dataset's (templates.py)

###########################
# Dataloader
###########################
_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4
_C.DATALOADER.K_TRANSFORMS = 1
_C.DATALOADER.RETURN_IMG0 = False
_C.DATALOADER.TRAIN_X = CN()
_C.DATALOADER.TRAIN_X.SAMPLER = "RandomSampler"
_C.DATALOADER.TRAIN_X.BATCH_SIZE = 32
_C.DATALOADER.TRAIN_X.N_DOMAIN = 0
_C.DATALOADER.TRAIN_X.N_INS = 16
_C.DATALOADER.TRAIN_U = CN()
_C.DATALOADER.TRAIN_U.SAME_AS_X = True
_C.DATALOADER.TRAIN_U.SAMPLER = "RandomSampler"
_C.DATALOADER.TRAIN_U.BATCH_SIZE = 32
_C.DATALOADER.TRAIN_U.N_DOMAIN = 0
_C.DATALOADER.TRAIN_U.N_INS = 16
_C.DATALOADER.TEST = CN()
_C.DATALOADER.TEST.SAMPLER = "SequentialSampler"
_C.DATALOADER.TEST.BATCH_SIZE = 32

###########################
# Model
###########################
_C.MODEL = CN()
_C.MODEL.INIT_WEIGHTS = ""  # path to prompt-module weights loaded (by name and shape) before training
_C.MODEL.ALLOW_PARTIAL_LOAD = False  # load checkpoints of another trainer or with other keys (matching keys only)
_C.MODEL.HALF_ON_CPU = False  # True: PREC fp16/bf16 run in half precision on CPU too (else fp32 there)
_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.NAME = ""  # CLIP model: RN50, ViT-B/16, ..., "toyclip", an open_clip "arch:pretrained" or a file
_C.MODEL.BACKBONE.PRETRAINED = True
_C.MODEL.BACKBONE.CACHE_DIR = ""  # where CLIP weights are cached; "" = $CLIP_CACHE_DIR or ~/.cache/clip
_C.MODEL.HEAD = CN()
_C.MODEL.HEAD.NAME = ""
_C.MODEL.HEAD.HIDDEN_LAYERS = ()
_C.MODEL.HEAD.ACTIVATION = "relu"
_C.MODEL.HEAD.BN = True
_C.MODEL.HEAD.DROPOUT = 0.0

###########################
# Optimization
###########################
_C.OPTIM = CN()
_C.OPTIM.NAME = "adam"  # sgd, adam, adamw, amsgrad, rmsprop
_C.OPTIM.LR = 0.0003
_C.OPTIM.WEIGHT_DECAY = 5e-4
_C.OPTIM.MOMENTUM = 0.9
_C.OPTIM.SGD_DAMPNING = 0
_C.OPTIM.SGD_NESTEROV = False
_C.OPTIM.RMSPROP_ALPHA = 0.99
_C.OPTIM.ADAM_BETA1 = 0.9
_C.OPTIM.ADAM_BETA2 = 0.999
_C.OPTIM.STAGED_LR = False
_C.OPTIM.NEW_LAYERS = ()
_C.OPTIM.BASE_LR_MULT = 0.1
_C.OPTIM.LR_SCHEDULER = "single_step"  # single_step, multi_step, cosine
_C.OPTIM.STEPSIZE = (-1,)  # -1 or 0: the whole run is one step (Dassl)
_C.OPTIM.GAMMA = 0.1
_C.OPTIM.MAX_EPOCH = 10
_C.OPTIM.WARMUP_EPOCH = -1  # > 0 enables warm-up
_C.OPTIM.WARMUP_TYPE = "linear"  # constant or linear
_C.OPTIM.WARMUP_CONS_LR = 1e-5
_C.OPTIM.WARMUP_MIN_LR = 1e-5
_C.OPTIM.WARMUP_RECOUNT = True

###########################
# Train
###########################
_C.TRAIN = CN()
_C.TRAIN.CHECKPOINT_FREQ = 1  # save every N epochs (Dassl: 0 = last only); this project saves each epoch to resume
_C.TRAIN.KEEP_LAST = 2  # keep the newest N periodic checkpoints (the final one is always kept)
_C.TRAIN.PRINT_FREQ = 10
_C.TRAIN.COUNT_ITER = "train_x"

###########################
# Test
###########################
_C.TEST = CN()
_C.TEST.EVALUATOR = "Classification"
_C.TEST.PER_CLASS_RESULT = False
_C.TEST.COMPUTE_CMAT = False
_C.TEST.NO_TEST = False
_C.TEST.SPLIT = "test"  # test or val
_C.TEST.FINAL_MODEL = "last_step"  # last_step or best_val
_C.TEST.FEATURE_CACHE = True  # reuse stored image features where the image path has no learned input (exact)

###########################
# Trainer
###########################
_C.TRAINER = CN()
_C.TRAINER.NAME = ""


def get_cfg_default() -> CN:
    """A fresh copy of the defaults (Dassl's ``get_cfg_default``)."""
    return _C.clone()
