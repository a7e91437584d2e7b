# axle_embed(TARGET <tgt> FUNCTION <name> BASE_DIR <dir> FILES <f>...)
#
# Embeds text files into <tgt> at build time. Generates a source defining
#   std::string_view axle::embedded::<name>(std::string_view relative_path);
# that returns the file's contents ("" when absent), plus
#   const std::vector<std::string_view>& axle::embedded::<name>_list();
# Paths are relative to BASE_DIR. Edits to the files rebuild the generated source.
set(_AXLE_EMBED_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/AxleEmbedScript.cmake")

function(axle_embed)
  cmake_parse_arguments(E "" "TARGET;FUNCTION;BASE_DIR" "FILES" ${ARGN})
  set(out "${CMAKE_CURRENT_BINARY_DIR}/embedded_${E_FUNCTION}.cpp")
  set(rel_list "")
  set(abs_list "")
  foreach(f IN LISTS E_FILES)
    get_filename_component(abs "${f}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    file(RELATIVE_PATH rel "${E_BASE_DIR}" "${abs}")
    list(APPEND rel_list "${rel}")
    list(APPEND abs_list "${abs}")
  endforeach()
  string(REPLACE ";" "|" rel_arg "${rel_list}")
  string(REPLACE ";" "|" abs_arg "${abs_list}")
  add_custom_command(
    OUTPUT "${out}"
    COMMAND "${CMAKE_COMMAND}" "-DOUT=${out}" "-DFUNC=${E_FUNCTION}" "-DRELS=${rel_arg}" "-DABSS=${abs_arg}"
            -P "${_AXLE_EMBED_SCRIPT}"
    DEPENDS ${abs_list} "${_AXLE_EMBED_SCRIPT}"
    COMMENT "Embedding ${E_FUNCTION} (${CMAKE_CURRENT_SOURCE_DIR})"
    VERBATIM)
  target_sources(${E_TARGET} PRIVATE "${out}")
endfunction()
