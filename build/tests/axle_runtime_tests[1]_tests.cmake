set(  axle_runtime_tests_TESTS)
