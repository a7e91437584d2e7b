file(REMOVE_RECURSE
  "../bin/custom_kernel"
  "../bin/custom_kernel.pdb"
  "CMakeFiles/custom_kernel.dir/custom_kernel.cpp.o"
  "CMakeFiles/custom_kernel.dir/custom_kernel.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/custom_kernel.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
