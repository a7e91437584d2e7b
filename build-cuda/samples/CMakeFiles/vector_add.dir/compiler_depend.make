# Empty compiler generated dependencies file for vector_add.
# This may be replaced when dependencies are built.
