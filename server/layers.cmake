# sepconv_check_layer(TARGET DIR [FRONTEND] [CHECK name] [GLOBS pattern...]
#                     ALLOW prefix... [FORBID regex...]):
# before TARGET builds, checks every #include of the files matching GLOBS
# (default: every .h and .cc below DIR, relative to the calling CMakeLists):
# a project header (engine/..., server/..., client/..., a generated *.pb.h)
# must start with one of the ALLOW prefixes, i.e. belong to a layer TARGET
# links, and no header may match a FORBID regex. Unless FRONTEND is given,
# gRPC and HTTP headers are refused too: the engine, the model layer and the
# core are protocol-free. Includes are read as the compiler reads them
# (spelling, relative paths, `..`), and another directory's internal/
# headers are refused: the exact rules are at the top of check_layer.cmake.
# A violation fails the build, naming file, line and layer.
# CHECK names the check when a target has more than one.
function(sepconv_check_layer target dir)
  cmake_parse_arguments(ARG "FRONTEND" "CHECK" "ALLOW;FORBID;GLOBS" ${ARGN})
  if(NOT ARG_GLOBS)
    set(ARG_GLOBS *.h *.cc)
  endif()
  if(NOT ARG_CHECK)
    set(ARG_CHECK ${target})
  endif()
  set(globs)
  foreach(glob ${ARG_GLOBS})
    list(APPEND globs ${CMAKE_CURRENT_SOURCE_DIR}/${dir}/${glob})
  endforeach()
  if(ARG_GLOBS MATCHES "/")
    file(GLOB files CONFIGURE_DEPENDS ${globs})
  else()
    file(GLOB_RECURSE files CONFIGURE_DEPENDS ${globs})
  endif()
  set(stamp ${CMAKE_CURRENT_BINARY_DIR}/${ARG_CHECK}.layer_ok)
  string(REPLACE ";" "|" allow "${ARG_ALLOW}")
  string(REPLACE ";" "|" forbid "${ARG_FORBID}")
  string(REPLACE ";" "|" file_list "${files}")
  add_custom_command(
    OUTPUT ${stamp}
    COMMAND ${CMAKE_COMMAND} -DLAYER=${ARG_CHECK} "-DALLOW=${allow}" "-DFORBID=${forbid}"
            "-DFILES=${file_list}" -DFRONTEND=${ARG_FRONTEND} -DSTAMP=${stamp}
            -P ${PROJECT_SOURCE_DIR}/server/check_layer.cmake
    DEPENDS ${files} ${PROJECT_SOURCE_DIR}/server/check_layer.cmake
    COMMENT "Checking the includes of layer ${ARG_CHECK}"
    VERBATIM)
  add_custom_target(${ARG_CHECK}_layer_check DEPENDS ${stamp})
  add_dependencies(${target} ${ARG_CHECK}_layer_check)
endfunction()

# sepconv_library_headers(TARGET FOLDER folder [HEADERS header...]):
# TARGET's include folders. Its public headers (HEADERS, relative to FOLDER;
# by default every FOLDER/*.h, not internal/) are linked under their
# repository paths ("server/core/auth.h") into a folder of the build tree
# that TARGET alone exports, so a target sees the headers of the libraries it
# links and nothing else of the tree. TARGET's own sources also see FOLDER
# whole, internal/ included, through a private folder. The layer check stays:
# gRPC's and cpp-httplib's headers are in /usr/include, which every target
# sees (docs/architecture.md, "Layers").
function(sepconv_library_headers target)
  cmake_parse_arguments(ARG "" "FOLDER" "HEADERS" ${ARGN})
  set(source ${PROJECT_SOURCE_DIR}/${ARG_FOLDER})
  if(NOT ARG_HEADERS)
    file(GLOB ARG_HEADERS CONFIGURE_DEPENDS RELATIVE ${source} ${source}/*.h)
  endif()
  set(public ${CMAKE_BINARY_DIR}/include/${target})
  file(MAKE_DIRECTORY ${public}/${ARG_FOLDER})
  foreach(header ${ARG_HEADERS})
    file(CREATE_LINK ${source}/${header} ${public}/${ARG_FOLDER}/${header} SYMBOLIC)
  endforeach()
  set(private ${CMAKE_BINARY_DIR}/private/${target})
  cmake_path(GET ARG_FOLDER PARENT_PATH parent)
  file(MAKE_DIRECTORY ${private}/${parent})
  file(CREATE_LINK ${source} ${private}/${ARG_FOLDER} SYMBOLIC)
  target_include_directories(${target} PUBLIC ${public} PRIVATE ${private})
endfunction()
