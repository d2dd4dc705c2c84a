# Run by sepconv_check_layer (layers.cmake) as `cmake -P`: fails when a file
# of LAYER includes what the layer may not, naming file, line and rule.
# Writes STAMP when all is well. FILES are absolute paths below ROOT, the
# repository root (by default this file's parent folder; the tests pass one).
#
# Each include is first read as the compiler reads it:
# - the directive: blanks before and after `#` (or its digraph `%:`), /* */
#   comments on the line, #include_next and #import all count, and a line
#   continued with a backslash is joined to the next. An include whose
#   argument is neither "..." nor <...> (a macro) cannot be followed and is
#   refused.
# - the path: a "quoted" include naming a file that exists relative to the
#   including file's folder is that file; any other include is relative to
#   the include root (the repository root, or the system's), and an absolute
#   path below ROOT is made repository-relative. `.`, `..` and `//` are
#   collapsed. A path that climbs above ROOT is refused.
# Then the normalised path P, included by the file F of LAYER:
# 1. must not match a FORBID regex;
# 2. unless FRONTEND, must not be a protocol header: gRPC (grpc/, grpcpp/,
#    grpc++/, any *.grpc.pb.h), the service's generated messages
#    (grpc_service.*, health.*), proto/status_convert.h, cpp-httplib, or
#    Boost's HTTP and sockets (boost/beast/, boost/asio/).
#    Protobuf (google/protobuf/...) is not one: the model config is a
#    protobuf message that the loader parses (text_format) below the
#    frontends, and ALLOW already decides which generated *.pb.h a layer sees;
# 3. when a project header (engine/, server/, client/, tests/, proto/, a
#    generated *.pb.h, or a file found next to F), must start with an ALLOW
#    prefix, and be a .h file (any other file would escape the globs this
#    check reads);
# 4. when below a folder X/internal/, must be included from a file below X/
#    itself: X/internal/ is the private part of X, never of a layer that may
#    use X's public headers. The innermost internal/ counts, so
#    engine/loader/internal/ is engine/loader's alone, while engine/internal/
#    serves every file below engine/ (the loader's too).
# Not handled, on purpose: includes inside comments that span lines or inside
# `#if 0` are checked as if live (a false alarm at worst, never a miss).
cmake_minimum_required(VERSION 3.25)  # cmake_path; quoted strings are never variable names

if(NOT ROOT)
  cmake_path(GET CMAKE_CURRENT_LIST_DIR PARENT_PATH ROOT)
endif()
string(REPLACE "|" ";" allow "${ALLOW}")
string(REPLACE "|" ";" forbid "${FORBID}")
string(REPLACE "|" ";" files "${FILES}")
string(ASCII 1 backslash)  # stands for `\` in the lines read
set(directive "^[ \t]*(#|%:)[ \t]*(include_next|include|import)([^A-Za-z0-9_]|$)")

# The lines of FILE as a list, one element per physical line: `;`, `[`, `]`
# and `\` would split or join list elements, so they are replaced (`\` by
# the control character in `backslash`).
function(sepconv_read_lines file out)
  file(READ "${file}" text)
  string(REPLACE "\\" "${backslash}" text "${text}")
  string(REPLACE ";" "," text "${text}")
  string(REPLACE "[" "(" text "${text}")
  string(REPLACE "]" ")" text "${text}")
  string(REPLACE "\n" ";" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# Sets OUT_KIND to "" (not an include), quoted, angle or computed, and
# OUT_HEADER to the path between the delimiters.
function(sepconv_parse_include line out_kind out_header)
  string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" " " text "${line}")
  set(kind "")
  set(header "")
  if(text MATCHES "${directive}")
    string(REGEX REPLACE "${directive}" "\\3" rest "${text}")
    string(STRIP "${rest}" rest)
    if(rest MATCHES "^\"([^\"]*)\"")
      set(kind quoted)
      set(header "${CMAKE_MATCH_1}")
    elseif(rest MATCHES "^<([^>]*)>")
      set(kind angle)
      set(header "${CMAKE_MATCH_1}")
    else()
      set(kind computed)
    endif()
  endif()
  set(${out_kind} "${kind}" PARENT_SCOPE)
  set(${out_header} "${header}" PARENT_SCOPE)
endfunction()

# Sets OUT_PATH to the normalised path HEADER names, included from the
# repository folder DIR, and OUT_LOCAL to whether it was found next to the
# including file.
function(sepconv_resolve_include dir kind header out_path out_local)
  set(local FALSE)
  cmake_path(IS_ABSOLUTE header absolute)
  if(absolute)
    cmake_path(SET path NORMALIZE "${header}")
    cmake_path(IS_PREFIX ROOT "${path}" NORMALIZE inside)
    if(inside)
      cmake_path(RELATIVE_PATH path BASE_DIRECTORY "${ROOT}")
    endif()
  elseif(kind STREQUAL "quoted" AND EXISTS "${ROOT}/${dir}/${header}")
    cmake_path(SET path NORMALIZE "${dir}/${header}")
    set(local TRUE)
  else()
    cmake_path(SET path NORMALIZE "${header}")
  endif()
  set(${out_path} "${path}" PARENT_SCOPE)
  set(${out_local} "${local}" PARENT_SCOPE)
endfunction()

# Sets OUT to the rules (1-4 above) that the include of PATH breaks, one
# reason per element, for the including file at repository path REL.
function(sepconv_include_violations rel path local out)
  set(reasons "")
  foreach(pattern IN LISTS forbid)
    if(path MATCHES "${pattern}")
      list(APPEND reasons "forbidden in layer ${LAYER} (${pattern})")
    endif()
  endforeach()
  if(NOT FRONTEND AND (path MATCHES "^(grpc|grpcpp|grpc\\+\\+)/|\\.grpc\\.pb\\.h$"
                       OR path MATCHES "^(grpc_service|health)\\.|^proto/status_convert|httplib|^boost/(beast|asio)"))
    list(APPEND reasons "a protocol type below the frontends")
  endif()
  if(NOT local AND NOT path MATCHES "^(engine|server|client|tests|proto)/|\\.pb\\.h$")
    set(${out} "${reasons}" PARENT_SCOPE)
    return()
  endif()
  set(allowed FALSE)
  foreach(prefix IN LISTS allow)
    string(FIND "${path}" "${prefix}" at)
    if(at EQUAL 0)
      set(allowed TRUE)
    endif()
  endforeach()
  if(NOT allowed)
    list(APPEND reasons "not a layer ${LAYER} links (${ALLOW})")
  endif()
  if(NOT path MATCHES "\\.h$")
    list(APPEND reasons "a project include that is not a .h file (the layer checks read only .h and .cc files)")
  endif()
  if(path MATCHES "^(.*)/internal/")
    set(owner "${CMAKE_MATCH_1}")
    string(FIND "${rel}" "${owner}/" at)
    if(NOT at EQUAL 0)
      list(APPEND reasons "the internal header of ${owner}/, for files below ${owner}/ only")
    endif()
  endif()
  set(${out} "${reasons}" PARENT_SCOPE)
endfunction()

# Appends to OUT one error line per broken rule of each include of FILE.
function(sepconv_check_file file out)
  set(errors "")
  cmake_path(IS_PREFIX ROOT "${file}" NORMALIZE inside)
  if(NOT inside)
    set(${out} "  ${file}: not below the repository root ${ROOT}\n" PARENT_SCOPE)
    return()
  endif()
  cmake_path(SET rel NORMALIZE "${file}")  # globs of "." give engine/./loader/...
  cmake_path(RELATIVE_PATH rel BASE_DIRECTORY "${ROOT}")
  cmake_path(GET rel PARENT_PATH dir)
  sepconv_read_lines("${file}" lines)
  set(number 0)
  set(continued FALSE)
  foreach(physical IN LISTS lines)
    math(EXPR number "${number} + 1")
    if(NOT continued)
      set(start ${number})
      set(line "")
    endif()
    set(continued FALSE)
    if(physical MATCHES "${backslash}\r?$")
      string(REGEX REPLACE "${backslash}\r?$" "" physical "${physical}")
      set(continued TRUE)
    endif()
    string(APPEND line "${physical}")
    if(continued OR NOT line MATCHES "(#|%:)")
      continue()
    endif()
    sepconv_parse_include("${line}" kind header)
    if(kind STREQUAL "")
      continue()
    endif()
    string(STRIP "${line}" shown)
    string(REPLACE "${backslash}" "\\" shown "${shown}")
    set(where "  ${file}:${start}: ${shown}:")
    if(kind STREQUAL "computed")
      string(APPEND errors "${where} a computed include, which this check cannot follow\n")
      continue()
    endif()
    sepconv_resolve_include("${dir}" ${kind} "${header}" path local)
    if(NOT path STREQUAL header)
      set(where "  ${file}:${start}: ${shown} (resolves to ${path}):")
    endif()
    if(path MATCHES "^\\.\\.(/|$)")
      string(APPEND errors "${where} climbs above the repository root\n")
      continue()
    endif()
    sepconv_include_violations("${rel}" "${path}" ${local} reasons)
    foreach(reason IN LISTS reasons)
      string(APPEND errors "${where} ${reason}\n")
    endforeach()
  endforeach()
  set(${out} "${errors}" PARENT_SCOPE)
endfunction()

set(errors "")
foreach(file IN LISTS files)
  sepconv_check_file("${file}" file_errors)
  string(APPEND errors "${file_errors}")
endforeach()
if(errors)
  message(FATAL_ERROR "Layer check failed for ${LAYER}:\n${errors}")
endif()
file(WRITE ${STAMP} "ok\n")
