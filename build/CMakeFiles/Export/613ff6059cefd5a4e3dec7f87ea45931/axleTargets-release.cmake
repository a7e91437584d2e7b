#----------------------------------------------------------------
# Generated CMake target import file for configuration "Release".
#----------------------------------------------------------------

# Commands may need to know the format version.
set(CMAKE_IMPORT_FILE_VERSION 1)

# Import target "axle::runtime" for configuration "Release"
set_property(TARGET axle::runtime APPEND PROPERTY IMPORTED_CONFIGURATIONS RELEASE)
set_target_properties(axle::runtime PROPERTIES
  IMPORTED_LINK_DEPENDENT_LIBRARIES_RELEASE "spdlog::spdlog"
  IMPORTED_LOCATION_RELEASE "${_IMPORT_PREFIX}/lib/libaxle_runtime.so.0.1.0"
  IMPORTED_SONAME_RELEASE "libaxle_runtime.so.0"
  )

list(APPEND _cmake_import_check_targets axle::runtime )
list(APPEND _cmake_import_check_files_for_axle::runtime "${_IMPORT_PREFIX}/lib/libaxle_runtime.so.0.1.0" )

# Import target "axle::kernels" for configuration "Release"
set_property(TARGET axle::kernels APPEND PROPERTY IMPORTED_CONFIGURATIONS RELEASE)
set_target_properties(axle::kernels PROPERTIES
  IMPORTED_LOCATION_RELEASE "${_IMPORT_PREFIX}/lib/libaxle_kernels.so.0.1.0"
  IMPORTED_SONAME_RELEASE "libaxle_kernels.so.0"
  )

list(APPEND _cmake_import_check_targets axle::kernels )
list(APPEND _cmake_import_check_files_for_axle::kernels "${_IMPORT_PREFIX}/lib/libaxle_kernels.so.0.1.0" )

# Commands beyond this point should not need to know the version.
set(CMAKE_IMPORT_FILE_VERSION)
