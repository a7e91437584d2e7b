file(REMOVE_RECURSE
  "../bin/device_query"
  "../bin/device_query.pdb"
  "CMakeFiles/device_query.dir/device_query.cpp.o"
  "CMakeFiles/device_query.dir/device_query.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/device_query.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
