file(REMOVE_RECURSE
  "../bin/vector_add"
  "../bin/vector_add.pdb"
  "CMakeFiles/vector_add.dir/vector_add.cpp.o"
  "CMakeFiles/vector_add.dir/vector_add.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/vector_add.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
