file(REMOVE_RECURSE
  "../bin/axle"
  "../bin/axle.pdb"
  "CMakeFiles/axle_tool.dir/axle.cpp.o"
  "CMakeFiles/axle_tool.dir/axle.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/axle_tool.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
