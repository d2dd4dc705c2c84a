#include "server/models/served_config.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/loader/model_config.h"
#include "server/models/model_repository.h"

namespace sepconv {

ModelConfig EffectiveModelConfig(ModelConfig config, const SchedulerOptions& scheduler) {
  if (config.version_policy().policy_choice_case() == ModelVersionPolicy::POLICY_CHOICE_NOT_SET) {
    config.mutable_version_policy()->mutable_latest()->set_num_versions(1);
  }
  if (config.platform().empty() && config.backend().empty()) config.set_backend("sepconv");
  if (config.has_dynamic_batching()) {
    ModelDynamicBatching* batching = config.mutable_dynamic_batching();
    batching->set_max_queue_delay_microseconds(
        std::max<int64_t>(0, absl::ToInt64Microseconds(scheduler.max_queue_delay)));
    batching->clear_preferred_batch_size();
    for (int size : scheduler.preferred_batch_sizes) batching->add_preferred_batch_size(size);
    batching->mutable_default_queue_policy()->set_max_queue_size(
        static_cast<uint32_t>(std::max(0, scheduler.max_queue_size)));
  }
  if (config.instance_group().empty()) {
    config.add_instance_group()->set_count(std::max(1, scheduler.instances));
  }
  for (int i = 0; i < config.instance_group_size(); ++i) {
    ModelInstanceGroup* group = config.mutable_instance_group(i);
    if (group->name().empty()) group->set_name(absl::StrCat(config.name(), "_", i));
    if (group->kind() == ModelInstanceGroup::KIND_AUTO)
      group->set_kind(ModelInstanceGroup::KIND_CPU);
    if (group->count() < 1) group->set_count(1);
  }
  return config;
}

absl::StatusOr<ModelConfig> BuiltInModelConfig(const std::string& name, const ModelSpec& spec,
                                               const SchedulerOptions& scheduler) {
  absl::StatusOr<ModelConfig> completed =
      CompleteModelConfig(DefaultModelConfig(scheduler), name, spec, ModelIo{});
  if (!completed.ok()) return completed.status();
  return EffectiveModelConfig(*std::move(completed), scheduler);
}

}  // namespace sepconv
