"""On-device augmentation kernels.

Pure functions of ``(key, image)`` on ONE float HWC image in ``[0, 1]``; batch
with ``jax.vmap`` over per-image keys. :mod:`~ssl_jax.augment.recipes` turns
uint8 batches into normalised SimCLR-style views::

  from ssl_jax import augment
  recipe = augment.simclr_cifar()
  keys = jax.random.split(key, images.shape[0])
  views = jax.jit(lambda k, x: augment.batch_views(k, x, recipe))(keys, images)
"""
from ssl_jax.augment.audio import hann_window
from ssl_jax.augment.audio import log_mel_spectrogram
from ssl_jax.augment.audio import mel_filterbank
from ssl_jax.augment.audio import stft
from ssl_jax.augment import annotators  # pseudo-labels: augment.annotators.canny
from ssl_jax.augment import flow  # optical flow: augment.flow.horn_schunck
from ssl_jax.augment.color import adjust_brightness
from ssl_jax.augment.color import adjust_contrast
from ssl_jax.augment.color import adjust_hue
from ssl_jax.augment.color import adjust_saturation
from ssl_jax.augment.color import blur_kernel_size
from ssl_jax.augment.color import color_jitter
from ssl_jax.augment.color import color_jitter_from_uniforms
from ssl_jax.augment.color import gaussian_blur
from ssl_jax.augment.color import gaussian_kernel1d
from ssl_jax.augment.color import hsv_to_rgb
from ssl_jax.augment.color import normalize
from ssl_jax.augment.color import random_color_jitter
from ssl_jax.augment.color import random_gaussian_blur
from ssl_jax.augment.color import random_grayscale
from ssl_jax.augment.color import random_solarize
from ssl_jax.augment.color import rgb_to_grayscale
from ssl_jax.augment.color import rgb_to_hsv
from ssl_jax.augment.color import solarize
from ssl_jax.augment.geometry import center_crop_resize
from ssl_jax.augment.geometry import crop_box_from_draws
from ssl_jax.augment.geometry import random_flip
from ssl_jax.augment.geometry import random_resized_crop
from ssl_jax.augment.geometry import resize
from ssl_jax.augment.geometry import resized_crop
from ssl_jax.augment.geometry import rot90
from ssl_jax.augment.geometry import sample_crop_box
from ssl_jax.augment.recipes import batch_eval_views
from ssl_jax.augment.recipes import batch_views
from ssl_jax.augment.recipes import byol_pair
from ssl_jax.augment.recipes import byol_view1
from ssl_jax.augment.recipes import byol_view2
from ssl_jax.augment.recipes import eval_view
from ssl_jax.augment.recipes import get_recipe
from ssl_jax.augment.recipes import mocov2
from ssl_jax.augment.recipes import simclr_cifar
from ssl_jax.augment.recipes import simclr_digits
from ssl_jax.augment.recipes import simclr_imagenet
from ssl_jax.augment.recipes import view
from ssl_jax.augment.permutations import hamming_stats
from ssl_jax.augment.permutations import load_or_create_permutations
from ssl_jax.augment.permutations import max_hamming_permutations
from ssl_jax.augment.pretext import all_rotations
from ssl_jax.augment.pretext import apply_mask
from ssl_jax.augment.pretext import batch_multi_crop
from ssl_jax.augment.pretext import central_square_mask
from ssl_jax.augment.pretext import degrade_for_super_resolution
from ssl_jax.augment.pretext import downsample
from ssl_jax.augment.pretext import jigsaw
from ssl_jax.augment.pretext import jigsaw_tiles
from ssl_jax.augment.pretext import lab_to_rgb
from ssl_jax.augment.pretext import multi_crop
from ssl_jax.augment.pretext import num_kept_patches
from ssl_jax.augment.pretext import patchify
from ssl_jax.augment.pretext import random_block_mask
from ssl_jax.augment.pretext import random_colour_drop
from ssl_jax.augment.pretext import random_patch_mask
from ssl_jax.augment.pretext import relative_position_pair
from ssl_jax.augment.pretext import rgb_to_lab
from ssl_jax.augment.pretext import split_l_ab
from ssl_jax.augment.pretext import unpatchify
from ssl_jax.augment.pretext import upsample

__all__ = [
    # Audio front end (STFT, log-mel).
    "hann_window", "log_mel_spectrogram", "mel_filterbank", "stft",
    "adjust_brightness", "adjust_contrast", "adjust_hue", "adjust_saturation",
    "batch_eval_views", "batch_views", "blur_kernel_size",
    "center_crop_resize", "color_jitter", "color_jitter_from_uniforms",
    "crop_box_from_draws", "eval_view",
    "gaussian_blur", "gaussian_kernel1d", "hsv_to_rgb", "normalize",
    "random_color_jitter", "random_flip", "random_gaussian_blur",
    "random_grayscale", "random_resized_crop", "random_solarize", "resize",
    "resized_crop", "rgb_to_grayscale", "rgb_to_hsv", "rot90",
    "sample_crop_box", "simclr_cifar", "simclr_digits", "simclr_imagenet",
    "solarize", "view",
    # Recipe presets.
    "byol_pair", "byol_view1", "byol_view2", "get_recipe", "mocov2",
    # Pretext transforms and jigsaw permutation sets.
    "all_rotations", "apply_mask", "batch_multi_crop", "central_square_mask",
    "degrade_for_super_resolution", "downsample", "hamming_stats", "jigsaw",
    "jigsaw_tiles", "lab_to_rgb", "load_or_create_permutations",
    "max_hamming_permutations", "multi_crop", "num_kept_patches", "patchify",
    "random_block_mask", "random_colour_drop", "random_patch_mask",
    "relative_position_pair", "rgb_to_lab", "split_l_ab", "unpatchify",
    "upsample",
]
