"""Every number the planner decides with, in one place.

The baseline values are the rules nnU-Net publishes for its default planner;
the memory-related ones belong to autounet's own memory model.
"""

# --- target spacing -------------------------------------------------------
ANISOTROPY_RATIO = 3.0
"""An axis whose spacing is more than this many times coarser than the others is anisotropic."""
ANISOTROPIC_AXIS_PERCENTILE = 10.0
"""On an anisotropic axis the target spacing is this percentile of the cases' spacings (not the median)."""

# --- patch and topology ---------------------------------------------------
INITIAL_PATCH_VOXELS_3D = 256**3
"""The starting 3D patch holds this many voxels (shaped by the spacing, then clipped to the median image)."""
INITIAL_PATCH_VOXELS_2D = 2048**2
MIN_FEATURE_MAP_EDGE = 4
"""No axis is downsampled below this many voxels: the bottleneck is at least 4 voxels per pooled axis."""
POOL_SPACING_RATIO = 2.0
"""An axis is pooled (and gets 3-wide kernels) only while its spacing is within 2x of the finest axis."""
SINGLE_AXIS_POOL_MIN_EDGE = 3 * MIN_FEATURE_MAP_EDGE
"""When only one axis can be pooled, it must be at least this long (pooling one axis alone gains little)."""
CONV_KERNEL = 3
BOTTLENECK_KERNEL = 3
MIN_STAGES = 2
"""A U-Net needs one downsampling at least; tiny images get their patch padded up to allow it."""

# --- network width --------------------------------------------------------
BASE_FEATURES = 32
MAX_FEATURES_3D = 320
MAX_FEATURES_2D = 512
CONVS_PER_STAGE = 2

# --- batch ----------------------------------------------------------------
MIN_BATCH_SIZE = 2
PATCH_FIT_BATCH_3D = 2
"""3D patches are sized so that this batch fits; the batch then grows while it fits."""
PATCH_FIT_BATCH_2D = 12
"""2D patches are sized so that this batch fits (2D training needs many slices per step)."""
MAX_DATASET_FRACTION_PER_BATCH = 0.05
"""One batch never covers more than 5 % of the dataset's voxels (to limit overfitting)."""

# --- cascade --------------------------------------------------------------
LOWRES_COVERAGE_THRESHOLD = 0.25
"""3d_lowres (and the cascade) is planned when the fullres patch covers less than this of the median image."""
LOWRES_SPACING_STEP = 1.03
"""The low-resolution spacing grows by 3 % per step until its patch covers enough of the image."""
LOWRES_MAX_STEPS = 400

# --- resampling -----------------------------------------------------------
RESAMPLE_ORDER_DATA = 3
RESAMPLE_ORDER_SEG = 1
RESAMPLE_ORDER_Z = 0
"""Along an anisotropic axis images and labels are resampled with nearest neighbour."""

# --- normalisation --------------------------------------------------------
NONZERO_MASK_MAX_RELATIVE_SIZE = 0.75
"""z-score uses the nonzero mask when cropping shrank the median image below 3/4 of its size."""

# --- memory budget --------------------------------------------------------
CPU_DEFAULT_BUDGET_GB = 8.0
"""Without a GPU, plan for a GPU of this size (the reference size nnU-Net plans for)."""
MPS_RAM_FRACTION = 0.5
"""On Apple MPS the GPU shares RAM: plan for this fraction of it."""
# The three margins are set so that nnU-Net's default plans (made for 8 GB) estimate at 7-8 GB: its authors report
# that those plans take 7 to 9 GB on real GPUs (nnU-Net issues #253 and #658). They are not yet measured with
# `autounet plan --verify` on a GPU.
CUDA_CONTEXT_GB = 0.75
"""GPU memory taken by the CUDA context, cuDNN/cuBLAS handles and kernels before any tensor exists."""
CUDNN_WORKSPACE_GB = 0.5
"""Scratch memory cuDNN convolution algorithms may take on top of the tensors."""
ALLOCATOR_OVERHEAD = 0.20
"""Extra fraction for the caching allocator's rounding and fragmentation."""
