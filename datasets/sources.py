"""Where each benchmark's files come from: URLs, Google Drive ids, checksums, archive -> layout moves.

Data only; `datasets/download.py` does the work and `datasets/layout.py` says where things go.
Provenance of the facts below:
- Google Drive ids of the `split_zhou_*.json` files, `cat_to_name.json`, `classnames.txt` and the
  UCF101 middle frames: CoOp's DATASETS.md (KaiyangZhou/CoOp).
- URLs and MD5s of Pets, Flowers, Food-101, SUN397, DTD, EuroSAT (Hugging Face copy), Caltech101
  (data.caltech.edu) and FGVC Aircraft: torchvision.datasets (0.2x). The original Stanford Cars
  MD5s: torchvision's StanfordCars before the Stanford host died.
- ImageNetV2 on Hugging Face: modestyachts/ImageNetV2_pytorch. ImageNet-Sketch: the Drive id in
  HaohanWang/ImageNet-Sketch's README; its Hugging Face copy: songweig/imagenet_sketch.
  ImageNet-A/-R: the Berkeley tarballs linked from hendrycks/natural-adv-examples and imagenet-r.
- EuroSAT on Zenodo (record 7711810, EuroSAT_RGB.zip): MD5 as published on the record, SHA-256 and
  size (94,658,721 bytes) as reported by third-party scripts that pin it.
An empty checksum means none is published that we know of; such files get a content check instead
(valid archive / valid split JSON / 1000 class names). Split-file checksums are not published.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mirror:
    """One place to get one file. It is saved as `<root>/_downloads/<dataset folder>/<file>`; a file
    already there (kept from an earlier run, or put there by hand) is used before any download.

    A mirror with neither `url` nor `gdrive_id` can only be supplied by hand (dead upstream).
    `moves` maps archive paths to dataset-folder paths; "dir/*" moves every entry of `dir`.
    No moves: the file is not an archive and becomes the item's single `provides` path.
    `inner` names an archive inside the archive; moves then apply to its contents.
    """

    file: str
    url: str = ""
    gdrive_id: str = ""
    md5: str = ""
    sha256: str = ""
    moves: tuple[tuple[str, str], ...] = ()
    inner: str = ""
    note: str = ""  # printed when this mirror is used


@dataclass(frozen=True)
class Item:
    """Some paths of a dataset folder and the mirrors that produce them, tried in order.
    The item is skipped when all `provides` paths are present. No mirrors: manual step only.
    `copy_from` (relative to the data root) is copied instead of downloading when it exists."""

    provides: tuple[str, ...]
    mirrors: tuple[Mirror, ...]
    copy_from: str = ""


@dataclass(frozen=True)
class Source:
    """Everything needed to fetch one dataset. `manual` is printed when an item cannot be fetched
    automatically; it may use {root}, {folder} (the dataset folder) and {downloads}."""

    name: str  # key into datasets.layout.LAYOUTS
    items: tuple[Item, ...]
    manual: str = ""


def _drive_file(name: str, gdrive_id: str) -> Item:
    """A single file (split JSON, cat_to_name.json) from CoOp's Google Drive."""
    return Item((name,), (Mirror(name, gdrive_id=gdrive_id),))


_IMAGENET_CLASSNAMES_GDRIVE = "1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF"


def _classnames() -> Item:
    """ImageNet variants need ImageNet's classnames.txt: copied from imagenet/ when there."""
    return Item(
        ("classnames.txt",),
        (Mirror("classnames.txt", gdrive_id=_IMAGENET_CLASSNAMES_GDRIVE),),
        copy_from="imagenet/classnames.txt",
    )


_VGG = "https://www.robots.ox.ac.uk/~vgg/data"

_CARS_MANUAL = """\
Stanford's own links (ai.stanford.edu/~jkrause/...) have returned 404 since 2023 (KaiyangZhou/CoOp#61,
pytorch/vision#7545) and no mirror of the original archives is known to be stable. Get the original
files from any copy you trust and put them, under these exact names, in {downloads}/ :
  cars_train.tgz                   md5 065e5b463ae28d29e77c1b4b166cfe61
  cars_test.tgz                    md5 4ce7ebf6a94d07f1952d94dd34c4d501
  car_devkit.tgz                   md5 c3b158d763b6e2245038c8ad08e45376 (optional)
  cars_test_annos_withlabels.mat   md5 b0a2b23655a3edd16d84508592a98d10 (optional)
then rerun this command: it verifies the checksums and unpacks them into {folder}/.
Or place the images yourself (e.g. from the Kaggle copy "jessicali9530/stanford-cars-dataset",
whose folders are nested one level deeper and must be flattened):
  {folder}/cars_train/00001.jpg ... 08144.jpg   (8,144 images)
  {folder}/cars_test/00001.jpg ... 08041.jpg    (8,041 images)
CoOp's split file split_zhou_StanfordCars.json (fetched from Google Drive) lists paths such as
"cars_train/00001.jpg" relative to {folder}/, so the file names must be the original ones.
devkit/ and cars_test_annos_withlabels.mat are only needed to rebuild a missing split."""

_IMAGENET_MANUAL = """\
ImageNet (ILSVRC-2012) cannot be downloaded automatically: its licence requires an account at
https://image-net.org and accepting its terms. After downloading ILSVRC2012_img_train.tar and
ILSVRC2012_img_val.tar:
  {folder}/images/train/<wnid>/*.JPEG  the train tar holds one tar per class (n01440764.tar, ...);
                                       extract each into a folder named after it (1000 folders).
  {folder}/images/val/<wnid>/*.JPEG    the val tar is flat (50,000 images); sort the images into
                                       the same 1000 wnid folders using the labels of the ILSVRC-2012
                                       devkit (the usual "valprep.sh" script does exactly this).
If ImageNet is already on disk in this train/val layout, symlink instead of copying:
  mkdir -p {folder}/images && ln -s /path/to/train {folder}/images/train && ln -s /path/to/val {folder}/images/val
CoOp uses the val set as the test set. classnames.txt (CLIP's cleaned class names) is fetched by
this command from CoOp's Google Drive."""

_GDRIVE_NOTE = "Google Drive (the upstream link); large Drive downloads can hit a daily quota"

SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            "imagenet",
            (
                Item(("classnames.txt",), (Mirror("classnames.txt", gdrive_id=_IMAGENET_CLASSNAMES_GDRIVE),)),
                Item(("images/train/", "images/val/"), ()),
            ),
            manual=_IMAGENET_MANUAL,
        ),
        Source(
            "caltech101",
            (
                Item(
                    ("101_ObjectCategories/",),
                    (
                        # CoOp's link (www.vision.caltech.edu/Image_Datasets/...) moved to CaltechDATA,
                        # whose zip wraps the original 101_ObjectCategories.tar.gz.
                        Mirror(
                            "caltech-101.zip",
                            url="https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip",
                            md5="3138e1922a9193bfa496528edbbc45d0",
                            inner="caltech-101/101_ObjectCategories.tar.gz",
                            moves=(("101_ObjectCategories", "101_ObjectCategories"),),
                        ),
                        # The original tarball (MD5 as on the old Caltech page), as mirrored for torchvision.
                        Mirror(
                            "101_ObjectCategories.tar.gz",
                            gdrive_id="137RyRjvTBkBiIfeYBNZBtViDHQ6_Ewsp",
                            md5="b224c7392d521a49829488ab0f1120d9",
                            moves=(("101_ObjectCategories", "101_ObjectCategories"),),
                        ),
                    ),
                ),
                _drive_file("split_zhou_Caltech101.json", "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN"),
            ),
        ),
        Source(
            "oxford_pets",
            (
                Item(("images/",), (Mirror(
                    "images.tar.gz", url=f"{_VGG}/pets/data/images.tar.gz",
                    md5="5c4f3ee8e5d25df40f4fd59a7f44e54c", moves=(("images", "images"),)),)),
                Item(("annotations/",), (Mirror(
                    "annotations.tar.gz", url=f"{_VGG}/pets/data/annotations.tar.gz",
                    md5="95a8c909bbe2e81eed6a22bccdf3f68f", moves=(("annotations", "annotations"),)),)),
                _drive_file("split_zhou_OxfordPets.json", "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs"),
            ),
        ),
        Source(
            "stanford_cars",
            (
                Item(("cars_train/",), (Mirror(
                    "cars_train.tgz", md5="065e5b463ae28d29e77c1b4b166cfe61",
                    moves=(("cars_train", "cars_train"),)),)),
                Item(("cars_test/",), (Mirror(
                    "cars_test.tgz", md5="4ce7ebf6a94d07f1952d94dd34c4d501",
                    moves=(("cars_test", "cars_test"),)),)),
                Item(("devkit/",), (
                    # Re-uploaded in pytorch/vision#7545; accepted only if it is byte-identical to the original.
                    Mirror("car_devkit.tgz", url="https://github.com/pytorch/vision/files/11644847/car_devkit.tgz",
                           md5="c3b158d763b6e2245038c8ad08e45376", moves=(("devkit", "devkit"),)),
                )),
                Item(("cars_test_annos_withlabels.mat",), (Mirror(
                    "cars_test_annos_withlabels.mat", md5="b0a2b23655a3edd16d84508592a98d10"),)),
                _drive_file("split_zhou_StanfordCars.json", "1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT"),
            ),
            manual=_CARS_MANUAL,
        ),
        Source(
            "oxford_flowers",
            (
                Item(("jpg/",), (Mirror(
                    "102flowers.tgz", url=f"{_VGG}/flowers/102/102flowers.tgz",
                    md5="52808999861908f626f3c1f4e79d11fa", moves=(("jpg", "jpg"),)),)),
                Item(("imagelabels.mat",), (Mirror(
                    "imagelabels.mat", url=f"{_VGG}/flowers/102/imagelabels.mat",
                    md5="e0620be6f572b9609742df49c70aed4d"),)),
                _drive_file("cat_to_name.json", "1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0"),
                _drive_file("split_zhou_OxfordFlowers.json", "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT"),
            ),
        ),
        Source(
            "food101",
            (
                Item(("images/",), (Mirror(
                    "food-101.tar.gz", url="http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz",
                    md5="85eeb15f3717b99a5da872d97d918f87", moves=(("food-101/*", ""),)),)),
                _drive_file("split_zhou_Food101.json", "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl"),
            ),
        ),
        Source(
            "fgvc_aircraft",
            (
                # CoOp keeps only the archive's data/ folder, renamed fgvc_aircraft/. No MD5 is published.
                Item(
                    ("images/", "variants.txt", "images_variant_train.txt",
                     "images_variant_val.txt", "images_variant_test.txt"),
                    (Mirror(
                        "fgvc-aircraft-2013b.tar.gz",
                        url=f"{_VGG}/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz",
                        moves=(("fgvc-aircraft-2013b/data/*", ""),)),),
                ),
            ),
        ),
        Source(
            "sun397",
            (
                Item(("SUN397/",), (Mirror(
                    "SUN397.tar.gz", url="http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz",
                    md5="8ca2778205c41d23104230ba66911c7a", moves=(("SUN397", "SUN397"),)),)),
                # Partition lists, only needed to rebuild the split. No MD5 is published; whether the
                # zip wraps them in a folder is not documented (the installer accepts either).
                Item(("ClassName.txt", "Training_01.txt", "Testing_01.txt"), (Mirror(
                    "Partitions.zip", url="https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip",
                    moves=(("ClassName.txt", "ClassName.txt"), ("Training_01.txt", "Training_01.txt"),
                           ("Testing_01.txt", "Testing_01.txt"))),)),
                _drive_file("split_zhou_SUN397.json", "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq"),
            ),
        ),
        Source(
            "dtd",
            (
                Item(("images/",), (Mirror(
                    "dtd-r1.0.1.tar.gz", url=f"{_VGG}/dtd/download/dtd-r1.0.1.tar.gz",
                    md5="fff73e5086ae6bdbea199a49dfb8a4c1", moves=(("dtd/*", ""),)),)),
                _drive_file("split_zhou_DescribableTextures.json", "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x"),
            ),
        ),
        Source(
            "eurosat",
            (
                Item(
                    ("2750/",),
                    (
                        # The original EuroSAT.zip (madm.dfki.de, whose certificate expired in 2023):
                        # same MD5, pinned revision of the TorchGeo copy that torchvision uses.
                        Mirror(
                            "EuroSAT.zip",
                            url="https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
                                "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
                            md5="c8fa014336c82ac7804f0398fcb19387",
                            moves=(("2750", "2750"),),
                        ),
                        # The authors' Zenodo record repackages the RGB images as EuroSAT_RGB/<Class>/...
                        # (folder name as used by scripts that download it; not checked byte-for-byte
                        # against 2750/).
                        Mirror(
                            "EuroSAT_RGB.zip",
                            url="https://zenodo.org/records/7711810/files/EuroSAT_RGB.zip",
                            md5="f46e308c4d50d4bf32fedad2d3d62f3b",
                            sha256="b4f5b234ecb7d7ff9c6cddb046543b4717c53fd6e9815be6c0e80cc614f51b90",
                            moves=(("EuroSAT_RGB", "2750"),),
                            note="Zenodo repackaging of EuroSAT RGB (EuroSAT_RGB/ renamed 2750/); "
                                 "not verified byte-identical to the original 2750/ images",
                        ),
                    ),
                ),
                _drive_file("split_zhou_EuroSAT.json", "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o"),
            ),
        ),
        Source(
            "ucf101",
            (
                # CoOp's own zip of the middle frame of every UCF101 video.
                Item(("UCF-101-midframes/",), (Mirror(
                    "UCF-101-midframes.zip", gdrive_id="10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O",
                    moves=(("UCF-101-midframes", "UCF-101-midframes"),)),)),
                _drive_file("split_zhou_UCF101.json", "1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y"),
            ),
        ),
        Source(
            "imagenetv2",
            (
                # CoOp's link (s3-us-west-2.amazonaws.com/imagenetv2public/...) is the original host;
                # the ImageNetV2 maintainers now point to this Hugging Face copy. No MD5 is published.
                Item(("imagenetv2-matched-frequency-format-val/",), (Mirror(
                    "imagenetv2-matched-frequency.tar.gz",
                    url="https://huggingface.co/datasets/vaishaal/ImageNetV2/resolve/main/"
                        "imagenetv2-matched-frequency.tar.gz",
                    moves=(("imagenetv2-matched-frequency-format-val",
                            "imagenetv2-matched-frequency-format-val"),)),)),
                _classnames(),
            ),
        ),
        Source(
            "imagenet_sketch",
            (
                # The zip holds sketch/<wnid>/...; CoOp names that folder images/. No MD5 is published.
                Item(("images/",), (
                    Mirror("ImageNet-Sketch.zip",
                           url="https://huggingface.co/datasets/songweig/imagenet_sketch/resolve/main/"
                               "data/ImageNet-Sketch.zip",
                           moves=(("sketch", "images"),)),
                    Mirror("ImageNet-Sketch-gdrive.zip", gdrive_id="1Mj0i5HBthqH1p_yeXzsg22gZduvgoNeA",
                           moves=(("sketch", "images"),), note=_GDRIVE_NOTE),
                )),
                _classnames(),
            ),
        ),
        Source(
            "imagenet_a",
            (
                Item(("imagenet-a/",), (Mirror(
                    "imagenet-a.tar", url="https://people.eecs.berkeley.edu/~hendrycks/imagenet-a.tar",
                    moves=(("imagenet-a", "imagenet-a"),)),)),
                _classnames(),
            ),
        ),
        Source(
            "imagenet_r",
            (
                Item(("imagenet-r/",), (Mirror(
                    "imagenet-r.tar", url="https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar",
                    moves=(("imagenet-r", "imagenet-r"),)),)),
                _classnames(),
            ),
        ),
    )
}
