# CMake generated Testfile for 
# Source directory: /work/main/tests
# Build directory: /work/main/build/tests
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build/tests/axle_runtime_tests[1]_include.cmake")
add_test([=[install_consumer]=] "/work/main/tests/install_consumer/run.sh" "/work/main/build" "/work/main/tests/install_consumer")
set_tests_properties([=[install_consumer]=] PROPERTIES  ENVIRONMENT "AXLE_CACHE_DIR=/work/main/build/tests/kernel_cache" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;23;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[sample_vector_add]=] "/work/main/build/bin/vector_add" "100003")
set_tests_properties([=[sample_vector_add]=] PROPERTIES  ENVIRONMENT "AXLE_CACHE_DIR=/work/main/build/tests/kernel_cache" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;29;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[sample_custom_kernel]=] "/work/main/build/bin/custom_kernel" "/work/main/samples/kernels/saxpy.cl" "saxpy")
set_tests_properties([=[sample_custom_kernel]=] PROPERTIES  ENVIRONMENT "AXLE_CACHE_DIR=/work/main/build/tests/kernel_cache" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;30;add_test;/work/main/tests/CMakeLists.txt;0;")
