
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/samples/custom_kernel.cpp" "samples/CMakeFiles/custom_kernel.dir/custom_kernel.cpp.o" "gcc" "samples/CMakeFiles/custom_kernel.dir/custom_kernel.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/main/build/samples/CMakeFiles/axle_sample_kernels.dir/DependInfo.cmake"
  "/work/main/build/kernels/CMakeFiles/axle_kernels.dir/DependInfo.cmake"
  "/work/main/build/runtime/CMakeFiles/axle_runtime.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
