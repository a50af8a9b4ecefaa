// The layer kinds a config can name: one LayerKind per keyword (its syntax, its PyTorch
// equivalent, how to check its words and how to build it), defined in the kind's own file in
// nn/ and listed once in registry.cpp; and the parser of a layer list such as
// "conv 32 k4 s2 p1, relu, flatten, fc 256".
#pragma once
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "nn/layer.hpp"
#include "nn/param_store.hpp"

namespace vd {

// One layer as written: "conv 32 k4 s2 p1" is keyword "conv" and args {"32", "k4", "s2",
// "p1"}; a block "name(a, b, ...) args" also has the layers inside its parentheses as body.
struct LayerText {
  std::string keyword;
  std::vector<std::string> args;
  bool has_body = false;
  std::vector<LayerText> body;
  std::string text;  // as written, for messages
};

// Why a layer's words are wrong, without any "where": the caller adds which network and layer.
struct SyntaxError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Where a layer is built: its full name (the prefix of its parameter names, "encoder.conv1"),
// its input shape, the store for its parameters, the activation fused into it (for kinds
// with fuses_activation), and the network it is in, for messages ("encoder").
struct BuildSite {
  ParamStore& store;
  std::string name;
  Shape in;
  Activation act = Activation::None;
  std::string what;
};

struct LayerKind {
  std::string keyword;  // "conv"
  std::string syntax;   // "conv C kK [sS] [pP]"
  std::string what;     // "convolution, C output channels, K x K kernel, ..."
  std::string torch;    // its PyTorch equivalent, "nn.Conv2d"
  // Named "<prefix>.<keyword><count>" counted per keyword (the checkpoint's names), else
  // "<prefix>.<keyword><count>" counted over all kinds without parameters.
  bool params = false;
  // An activation right after it runs inside it (a oneDNN post-op).
  bool fuses_activation = false;
  // Not None: the kind is this activation, fused into the layer before it where that layer
  // fuses activations.
  Activation activation = Activation::None;
  // Reads its input as a flat vector: the builder inserts a flatten before it on an image,
  // and a conditional model's label is concatenated to the input of the first one.
  bool flat_input = false;
  // Throws SyntaxError when the words do not make a layer of this kind.
  std::function<void(const LayerText&)> check;
  // Builds the layer (its words passed check()); throws vd::ShapeError when it does not fit
  // site.in.
  std::function<std::unique_ptr<Layer>(const BuildSite&, const LayerText&)> build;
};

// Every kind, in the order of the syntax help; find_layer_kind returns nullptr if unknown.
const std::vector<LayerKind>& layer_kinds();
const LayerKind* find_layer_kind(std::string_view keyword);
// "layers are 'fc N', 'conv C kK [sS] [pP]', ... or 'reshape CxHxW', separated by commas"
std::string layer_syntax_help();

// Splits a comma-separated list into layers, blocks' bodies included. Throws SyntaxError
// naming the character where parentheses do not match. Does not check the words.
std::vector<LayerText> split_layer_list(const std::string& text);

// Word helpers for the kinds' check() and build().
bool parse_int(const std::string& word, int& value);  // the whole word, base 10
// A shape "CxHxW" of positive sizes; false when the word is not one.
bool parse_shape(const std::string& word, Shape& shape);
void expect_no_args(const LayerText& l);  // SyntaxError unless there are none (and no body)

}  // namespace vd
