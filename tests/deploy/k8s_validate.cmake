# k8s_validate.sh: deploy/k8s rendered by `kubectl kustomize` and every object
# validated against the Kubernetes and Prometheus Operator schemas (npm
# kubernetes-models, @kubernetes-models/prometheus-operator), and shown to
# reject broken manifests. Needs kubectl and node (deploy/install-deps.sh test);
# without them the test is still registered and fails, never skips.
find_program(SEPCONV_KUBECTL kubectl)
find_program(SEPCONV_NODE node)
add_test(NAME k8s_validate_test
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/k8s_validate.sh ${PROJECT_SOURCE_DIR}
                 ${SEPCONV_KUBECTL} ${SEPCONV_NODE})
set_tests_properties(k8s_validate_test PROPERTIES LABELS integration TIMEOUT 120)
