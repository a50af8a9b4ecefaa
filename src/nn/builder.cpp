// Checking a layer list against the layer kinds, and building it into a Graph: names,
// fused activations, flattens before flat-input layers, the conditional label.
#include "nn/builder.hpp"

#include <map>
#include <memory>

#include "core/error.hpp"
#include "nn/reshape.hpp"

namespace vd {

namespace {

ConfigError layer_error(const std::string& what, const std::string& text, const std::string& why) {
  return ConfigError(what + ": layer '" + text + "': " + why + "; " + layer_syntax_help());
}

void check_layer(const LayerText& l, const std::string& what) {
  const LayerKind* kind = find_layer_kind(l.keyword);
  if (!kind) throw layer_error(what, l.text, "unknown layer '" + l.keyword + "'");
  try {
    kind->check(l);
  } catch (const SyntaxError& e) {
    throw layer_error(what, l.text, e.what());
  } catch (const ConfigError& e) {
    // A layer of a block's body, already named by the block ("in 'res(...)': layer ...").
    throw ConfigError(what + ": " + e.what());
  }
}

// A ShapeError's text without the file:line prefix VD_CHECK adds: this is the user's config,
// not our bug.
std::string user_message(const ShapeError& e) {
  std::string msg = e.what();
  const auto cut = msg.find(": ");
  if (cut != std::string::npos && msg.substr(0, cut).find(".cpp:") != std::string::npos)
    msg = msg.substr(cut + 2);
  return msg;
}

}  // namespace

std::vector<LayerText> parse_layers(const std::string& text, const std::string& what) {
  std::vector<LayerText> layers;
  try {
    layers = split_layer_list(text);
  } catch (const SyntaxError& e) {
    throw ConfigError(what + ": " + e.what() + "; " + layer_syntax_help());
  }
  check_layers(layers, what);
  return layers;
}

void check_layers(const std::vector<LayerText>& layers, const std::string& what) {
  for (const LayerText& l : layers) check_layer(l, what);
}

void build_layers(Graph& graph, ParamStore& store, const std::string& prefix,
                  const std::vector<LayerText>& layers, bool last_is_out, const std::string& what,
                  Graph::Value condition) {
  std::vector<const LayerKind*> kinds;
  for (const LayerText& l : layers) {
    check_layer(l, what);
    kinds.push_back(find_layer_kind(l.keyword));
  }
  size_t last_param = layers.size();
  for (size_t i = 0; i < layers.size(); ++i)
    if (kinds[i]->params) last_param = i;
  std::map<std::string, int> counts;  // per kind with parameters
  int other = 0;                      // over the kinds without
  bool conditioned = condition < 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerKind& kind = *kinds[i];
    const Shape in = graph.shape(graph.last());
    // An activation the layer before took in.
    if (kind.activation != Activation::None && i > 0 && kinds[i - 1]->fuses_activation) continue;
    BuildSite site{store, "", in, Activation::None, what};
    if (kind.fuses_activation && i + 1 < layers.size()) site.act = kinds[i + 1]->activation;
    if (kind.params)
      site.name =
          prefix + "." +
          (last_is_out && i == last_param ? std::string("out")
                                          : kind.keyword + std::to_string(++counts[kind.keyword]));
    else
      site.name = prefix + "." + kind.keyword + std::to_string(++other);
    try {
      if (kind.flat_input && !in.flat())  // PyTorch's flatten order is the plain layout's
        graph.add(make_flatten(prefix + ".flatten" + std::to_string(++other), in));
      if (kind.flat_input && !conditioned) {
        graph.add_concat(prefix + ".label", {graph.last(), condition});
        conditioned = true;
      }
      site.in = graph.shape(graph.last());
      graph.add(kind.build(site, layers[i]));
    } catch (const ShapeError& e) {
      throw ConfigError(what + ": layer '" + layers[i].text + "' does not fit its input " +
                        in.text() + ": " + user_message(e));
    }
  }
  if (!conditioned)
    throw ConfigError(what +
                      " has no fc layer; a conditional model (--conditional) feeds the "
                      "one-hot label into the first fc layer of the encoder and of the decoder");
}

}  // namespace vd
