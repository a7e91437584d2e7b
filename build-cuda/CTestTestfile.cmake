# CMake generated Testfile for 
# Source directory: /work/main
# Build directory: /work/main/build-cuda
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
subdirs("runtime")
subdirs("backends")
subdirs("kernels")
subdirs("tools")
subdirs("samples")
subdirs("tests")
