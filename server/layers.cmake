# sepconv_check_layer(TARGET DIR [FRONTEND] ALLOW prefix...): before TARGET
# builds, checks every quoted #include in server/DIR: a project header
# (engine/..., server/..., a generated *.pb.h) must start with one of the
# ALLOW prefixes, i.e. belong to a layer TARGET links. Unless FRONTEND is
# given, gRPC and HTTP headers (grpc/, grpcpp/, grpc_service*, health*,
# httplib) are refused too: the core and the model layer are protocol-free.
# A violation fails the build, naming the file, the line and the layer.
function(sepconv_check_layer target dir)
  cmake_parse_arguments(ARG "FRONTEND" "" "ALLOW" ${ARGN})
  file(GLOB_RECURSE files CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${dir}/*.h
       ${CMAKE_CURRENT_SOURCE_DIR}/${dir}/*.cc)
  set(stamp ${CMAKE_CURRENT_BINARY_DIR}/${target}.layer_ok)
  string(REPLACE ";" "|" allow "${ARG_ALLOW}")
  string(REPLACE ";" "|" file_list "${files}")
  add_custom_command(
    OUTPUT ${stamp}
    COMMAND ${CMAKE_COMMAND} -DLAYER=${target} "-DALLOW=${allow}" "-DFILES=${file_list}"
            -DFRONTEND=${ARG_FRONTEND} -DSTAMP=${stamp}
            -P ${PROJECT_SOURCE_DIR}/server/check_layer.cmake
    DEPENDS ${files} ${PROJECT_SOURCE_DIR}/server/check_layer.cmake
    COMMENT "Checking the includes of layer ${target}"
    VERBATIM)
  add_custom_target(${target}_layer_check DEPENDS ${stamp})
  add_dependencies(${target} ${target}_layer_check)
endfunction()
