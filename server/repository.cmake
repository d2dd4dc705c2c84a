# Included by server/CMakeLists.txt: the model repository (scanning, version
# policy, poll diff) as its own library, without gRPC, so its tests need no
# server. It is kept out of sepconv_server_lib's sources, which link it.
list(REMOVE_ITEM SEPCONV_SERVER_SRCS model_repository.cc)
add_library(sepconv_repository STATIC ${CMAKE_CURRENT_LIST_DIR}/model_repository.cc)
target_include_directories(sepconv_repository PUBLIC ${PROJECT_SOURCE_DIR})
# Public: the header exposes LoadedModel/ModelConfig and SchedulerOptions
# (scheduler.h, header-only use).
target_link_libraries(sepconv_repository
  PUBLIC sepconv_loader sepconv_engine absl::status absl::statusor absl::time
         absl::any_invocable absl::span
  PRIVATE absl::strings)
