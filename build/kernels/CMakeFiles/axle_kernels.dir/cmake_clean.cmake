file(REMOVE_RECURSE
  "CMakeFiles/axle_kernels.dir/embedded_kernel_resource.cpp.o"
  "CMakeFiles/axle_kernels.dir/embedded_kernel_resource.cpp.o.d"
  "CMakeFiles/axle_kernels.dir/src/blas.cpp.o"
  "CMakeFiles/axle_kernels.dir/src/blas.cpp.o.d"
  "embedded_kernel_resource.cpp"
  "libaxle_kernels.pdb"
  "libaxle_kernels.so"
  "libaxle_kernels.so.0"
  "libaxle_kernels.so.0.1.0"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/axle_kernels.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
