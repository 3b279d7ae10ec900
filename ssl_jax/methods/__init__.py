"""One module per SSL method; ``get_method`` maps ``config.method`` to it.

Method modules are imported on first use, so ``import ssl_jax.methods`` stays
cheap and one method's import error does not break the others.
"""

import importlib

# config.method -> "module:class" under ssl_jax.methods.
METHODS = {
    "simclr": "simclr:SimCLR",
    "simclr_v2": "simclr_v2:SimCLRv2",
    "moco": "moco:MoCo",
    "byol": "byol:BYOL",
    "simsiam": "simsiam:SimSiam",
    "barlow_twins": "barlow_twins:BarlowTwins",
    "vicreg": "vicreg:VICReg",
    "mae": "mae:MAE",
    "inpainting": "inpainting:Inpainting",
    "colorization": "colorization:Colorization",
    "super_resolution": "super_resolution:SuperResolution",
    "video_prediction": "video_prediction:VideoPrediction",
    "video_colorization": "video_colorization:VideoColorization",
    "rotation": "rotation:Rotation",
    "relative_position": "relative_position:RelativePosition",
    "jigsaw": "jigsaw:Jigsaw",
    "temporal_order": "temporal_order:TemporalOrder",
    "deepcluster": "deepcluster:DeepCluster",
    "cmc": "cmc:CMC",
    "rgb_flow": "rgb_flow:RGBFlow",
    "visual_text": "visual_text:VisualText",
    "audio_visual": "audio_visual:AudioVisual",
    "deep_infomax": "deep_infomax:DeepInfoMax",
    "cpc": "cpc:CPC",
    "synthetic_scenes": "synthetic_scenes:SyntheticScenes",
    "annotators": "annotators:Annotators",
    "masked_lm": "masked_lm:MaskedLM",
    "sentence_order": "sentence_order:SentenceOrder",
    "sentence_permutation": "bart_denoising:SentencePermutation",
    "document_rotation": "bart_denoising:DocumentRotation",
    "gap_sentences": "gap_sentences:GapSentences",
    "punctuation": "punctuation:Punctuation",
    "emoji": "punctuation:EmojiPrediction",
    "word2vec": "word2vec:Word2VecMethod",
}


def method_class(name):
  """The class implementing method ``name``."""
  if name not in METHODS:
    raise ValueError(
        f"config.method={name!r} is not a known method; use one of "
        f"{sorted(METHODS)}.")
  module_name, class_name = METHODS[name].split(":")
  module = importlib.import_module(f"ssl_jax.methods.{module_name}")
  return getattr(module, class_name)


def get_method(config, num_classes, total_steps):
  """Builds the method named by ``config.method`` for a run of ``total_steps``."""
  return method_class(config.method)(config, num_classes, total_steps)
