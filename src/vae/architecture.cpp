// The classic MLP in the layer-list syntax of nn/builder.
#include "vae/architecture.hpp"

namespace vd {

std::string mlp_encoder_spec(const std::vector<int>& hidden) {
  std::string s;
  for (int h : hidden) s += (s.empty() ? "" : ", ") + ("fc " + std::to_string(h)) + ", relu";
  return s;
}

std::string mlp_decoder_spec(const std::vector<int>& hidden, int64_t data_size) {
  std::string s;
  for (size_t i = hidden.size(); i-- > 0;) s += "fc " + std::to_string(hidden[i]) + ", relu, ";
  return s + "fc " + std::to_string(data_size);
}

}  // namespace vd
