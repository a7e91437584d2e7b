file(REMOVE_RECURSE
  "CMakeFiles/axle_runtime_tests.dir/config_test.cpp.o"
  "CMakeFiles/axle_runtime_tests.dir/config_test.cpp.o.d"
  "CMakeFiles/axle_runtime_tests.dir/conformance_test.cpp.o"
  "CMakeFiles/axle_runtime_tests.dir/conformance_test.cpp.o.d"
  "CMakeFiles/axle_runtime_tests.dir/disk_cache_test.cpp.o"
  "CMakeFiles/axle_runtime_tests.dir/disk_cache_test.cpp.o.d"
  "axle_runtime_tests"
  "axle_runtime_tests.pdb"
  "axle_runtime_tests[1]_tests.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/axle_runtime_tests.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
