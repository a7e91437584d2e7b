file(REMOVE_RECURSE
  "CMakeFiles/axle_sample_kernels.dir/embedded_sample_kernel.cpp.o"
  "CMakeFiles/axle_sample_kernels.dir/embedded_sample_kernel.cpp.o.d"
  "embedded_sample_kernel.cpp"
  "libaxle_sample_kernels.a"
  "libaxle_sample_kernels.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/axle_sample_kernels.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
