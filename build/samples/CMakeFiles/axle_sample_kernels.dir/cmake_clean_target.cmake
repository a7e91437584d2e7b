file(REMOVE_RECURSE
  "libaxle_sample_kernels.a"
)
