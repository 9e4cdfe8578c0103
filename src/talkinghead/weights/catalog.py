"""The built-in catalogue: official weight files of the models talkinghead ports.

Sources (see ``docs/weights.md``): SadTalker's ``scripts/download_models.sh`` (GitHub release
``OpenTalker/SadTalker`` ``v0.0.2-rc``, mirrored on the Hugging Face model repo
``vinthony/SadTalker-V002rc``; legacy set from ``Winfredy/SadTalker`` ``v0.0.2``, mirrored in the
Hugging Face space ``vinthony/SadTalker``), facexlib releases and GFPGAN releases. SadTalker's
SHA-256 values and sizes come from the Hugging Face LFS pointers. facexlib and GFPGAN publish no
hash, so those entries have ``sha256=None``: the first verified download records one.

The licence strings give the licence of the repository that publishes each file; weights trained
on third-party data may carry further terms, so check upstream before commercial use.

Backends may reuse these entries in their ``weights`` class attribute
(``weights = catalog.select("sadtalker-256", "mapping-00229")``).
"""

from __future__ import annotations

from .registry import WeightBundle, WeightFile

_ST_GH = "https://github.com/OpenTalker/SadTalker/releases/download/v0.0.2-rc/"
_ST_HF = "hf://vinthony/SadTalker-V002rc@main/"
_ST_LEGACY_GH = "https://github.com/Winfredy/SadTalker/releases/download/v0.0.2/"
_ST_LEGACY_HF = "hf://spaces/vinthony/SadTalker@main/checkpoints/"
_FACEXLIB = "https://github.com/xinntao/facexlib/releases/download/"
_ST_LICENCE = "Apache-2.0 (SadTalker repository)"
_FACEXLIB_LICENCE = "MIT (facexlib repository)"


def _sadtalker(name: str, filename: str, size: int | None, sha256: str, description: str) -> WeightFile:
    return WeightFile(
        name=name,
        filename=filename,
        urls=(_ST_GH + filename, _ST_HF + filename),
        sha256=sha256,
        size=size,
        licence=_ST_LICENCE,
        group="sadtalker",
        description=description,
    )


def _legacy(name: str, filename: str, sha256: str, description: str) -> WeightFile:
    return WeightFile(
        name=name,
        filename=filename,
        urls=(_ST_LEGACY_GH + filename, _ST_LEGACY_HF + filename),
        sha256=sha256,
        size=None,
        licence=_ST_LICENCE,
        group="sadtalker-legacy",
        description=description,
    )


FILES: tuple[WeightFile, ...] = (
    _sadtalker(
        "sadtalker-256",
        "SadTalker_V0.0.2_256.safetensors",
        725066984,
        "c211f5d6de003516bf1bbda9f47049a4c9c99133b1ab565c6961e5af16477bff",
        "SadTalker 0.0.2: ExpNet, PoseVAE, ReconNet, keypoint detector and 256 px renderer",
    ),
    _sadtalker(
        "sadtalker-512",
        "SadTalker_V0.0.2_512.safetensors",
        725066984,
        "0e063f7ff5258240bdb0f7690783a7b1374e6a4a81ce8fa33456f4cd49694340",
        "SadTalker 0.0.2 with the 512 px renderer",
    ),
    _sadtalker(
        "mapping-00229",
        "mapping_00229-model.pth.tar",
        155521183,
        "62a1e06006cc963220f6477438518ed86e9788226c62ae382ddc42fbcefb83f1",
        "SadTalker MappingNet, 70-d input (crop/resize modes)",
    ),
    _sadtalker(
        "mapping-00109",
        "mapping_00109-model.pth.tar",
        155779231,
        "84a8642468a3fcfdd9ab6be955267043116c2bec2284686a5262f1eaf017f64c",
        "SadTalker MappingNet, 73-d input (full modes)",
    ),
    _legacy(
        "sadtalker-legacy-audio2exp",
        "auido2exp_00300-model.pth",
        "b7608f0e6b477e50e03ca569ac5b04a841b9217f89d502862fc78fda4e46dec4",
        "legacy SadTalker ExpNet (SimpleWrapperV2)",
    ),
    _legacy(
        "sadtalker-legacy-audio2pose",
        "auido2pose_00140-model.pth",
        "4fba6701852dc57efbed25b1e4276e4ff752941860d69fc4429f08a02326ebce",
        "legacy SadTalker PoseVAE (Audio2Pose)",
    ),
    _legacy(
        "sadtalker-legacy-facevid2vid",
        "facevid2vid_00189-model.pth.tar",
        "fbad01d46f0510276dc4521322dde6824a873a4222cd0740c85762e7067ea71d",
        "legacy SadTalker face renderer (generator, keypoint detector, head-pose estimator)",
    ),
    _legacy(
        "sadtalker-legacy-recon",
        "epoch_20.pth",
        "6d17a6b23457b521801baae583cb6a58f7238fe6721fc3d65d76407460e9149b",
        "legacy SadTalker 3DMM ReconNet",
    ),
    WeightFile(
        name="retinaface-mobilenet0.25",
        filename="detection_mobilenet0.25_Final.pth",
        urls=(_FACEXLIB + "v0.1.0/detection_mobilenet0.25_Final.pth",),
        licence=_FACEXLIB_LICENCE,
        group="retinaface",
        description="RetinaFace face detector, MobileNet-0.25 backbone (small, fast)",
    ),
    WeightFile(
        name="retinaface-resnet50",
        filename="detection_Resnet50_Final.pth",
        urls=(
            _FACEXLIB + "v0.1.0/detection_Resnet50_Final.pth",
            "hf://camenduru/SadTalker@main/new/gfpgan/weights/detection_Resnet50_Final.pth",
        ),
        licence=_FACEXLIB_LICENCE,
        group="retinaface",
        description="RetinaFace face detector, ResNet-50 backbone (used by SadTalker and GFPGAN)",
    ),
    WeightFile(
        name="parsenet",
        filename="parsing_parsenet.pth",
        urls=(_FACEXLIB + "v0.2.2/parsing_parsenet.pth",),
        licence=_FACEXLIB_LICENCE,
        group="parsenet",
        description="ParseNet face parsing (soft paste-back mask for GFPGAN)",
    ),
    WeightFile(
        name="awing-wflw",
        filename="alignment_WFLW_4HG.pth",
        urls=(
            _FACEXLIB + "v0.1.0/alignment_WFLW_4HG.pth",
            "hf://camenduru/SadTalker@main/new/gfpgan/weights/alignment_WFLW_4HG.pth",
        ),
        licence=_FACEXLIB_LICENCE,
        group="awing",
        description="AWing FAN 98-point face landmarks (SadTalker preprocessing)",
    ),
    WeightFile(
        name="gfpgan-v1.4",
        filename="GFPGANv1.4.pth",
        urls=("https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",),
        licence="Apache-2.0 (GFPGAN repository; some parts under other licences, see upstream)",
        group="gfpgan",
        description="GFPGAN v1.4 face restoration (enhancer)",
    ),
)

BUNDLES: tuple[WeightBundle, ...] = (
    WeightBundle(
        "sadtalker-full",
        ("sadtalker-256", "mapping-00229", "mapping-00109", "retinaface-resnet50", "awing-wflw"),
        "everything the SadTalker animator needs at 256 px",
    ),
    WeightBundle(
        "enhancer-gfpgan",
        ("gfpgan-v1.4", "retinaface-mobilenet0.25", "retinaface-resnet50", "parsenet"),
        "everything the GFPGAN enhancer needs (default MobileNet-0.25 detector, the upstream ResNet-50 one, ParseNet)",
    ),
)

_BY_NAME = {wf.name: wf for wf in FILES}


def select(*names: str) -> tuple[WeightFile, ...]:
    """Catalogue entries by name, for a backend's ``weights`` attribute.

    Raises:
        KeyError: a name is not in the catalogue.
    """
    return tuple(_BY_NAME[n] for n in names)
