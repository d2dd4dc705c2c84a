#ifndef SEPCONV_SERVER_HTTP_METADATA_JSON_H_
#define SEPCONV_SERVER_HTTP_METADATA_JSON_H_

// KServe v2 REST metadata bodies: GET /v2 ({"name","version","extensions"})
// and GET /v2/models/{m}[/versions/{v}] ({"name","versions","platform",
// "inputs","outputs"}). Stateless; thread-safe.

#include <string>

#include "server/core/inference_core.h"

namespace sepconv {

std::string ServerMetadataJson(const ServerMetadataInfo& info);
std::string ModelMetadataJson(const ModelMetadataInfo& info);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_HTTP_METADATA_JSON_H_
