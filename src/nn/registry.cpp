// The list of layer kinds, their syntax help, and the splitting of a layer list into layers.
#include "nn/registry.hpp"

#include <charconv>
#include <sstream>

namespace vd {

// The kinds, each defined in its own file: adding one is that file plus a line here and one in
// layer_kinds().
LayerKind fc_kind();         // nn/linear.cpp
LayerKind conv_kind();       // nn/conv.cpp
LayerKind convt_kind();      // nn/conv.cpp
LayerKind relu_kind();       // nn/relu.cpp
LayerKind silu_kind();       // nn/activation.cpp
LayerKind gelu_kind();       // nn/activation.cpp
LayerKind leakyrelu_kind();  // nn/activation.cpp
LayerKind tanh_kind();       // nn/activation.cpp
LayerKind sigmoid_kind();    // nn/activation.cpp
LayerKind up_kind();         // nn/upsample.cpp
LayerKind flatten_kind();    // nn/reshape.cpp
LayerKind reshape_kind();    // nn/reshape.cpp
LayerKind gn_kind();         // nn/group_norm.cpp
LayerKind res_kind();        // nn/block.cpp
LayerKind attn_kind();       // nn/attention.cpp

const std::vector<LayerKind>& layer_kinds() {
  // The one registration of every kind; its order is the syntax help's.
  static const std::vector<LayerKind> kinds = {
      fc_kind(),      conv_kind(),      convt_kind(), relu_kind(),    silu_kind(),
      gelu_kind(),    leakyrelu_kind(), tanh_kind(),  sigmoid_kind(), up_kind(),
      flatten_kind(), reshape_kind(),   gn_kind(),    res_kind(),     attn_kind(),
  };
  return kinds;
}

const LayerKind* find_layer_kind(std::string_view keyword) {
  for (const LayerKind& k : layer_kinds())
    if (k.keyword == keyword) return &k;
  return nullptr;
}

std::string layer_syntax_help() {
  const auto& kinds = layer_kinds();
  std::string s = "layers are ";
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (i > 0) s += i + 1 == kinds.size() ? " or " : ", ";
    s += "'" + kinds[i].syntax + "'";
  }
  return s + ", separated by commas";
}

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\n");
  return s.substr(b, e - b + 1);
}

// One item of a list: "kw args" or "kw(body) args"; `at` is its offset in the whole text.
LayerText parse_item(const std::string& whole, size_t begin, size_t end) {
  LayerText l;
  l.text = trim(whole.substr(begin, end - begin));
  const size_t open = whole.find('(', begin);
  std::string head = whole.substr(begin, end - begin);
  if (open != std::string::npos && open < end) {
    // The matching ')' is the last one of the item (split_layer_list checked the nesting).
    const size_t close = whole.rfind(')', end - 1);
    l.has_body = true;
    l.body = split_layer_list(whole.substr(open + 1, close - open - 1));
    head = whole.substr(begin, open - begin) + " " + whole.substr(close + 1, end - close - 1);
    const std::string before = trim(whole.substr(begin, open - begin));
    if (before.find_first_of(" \t") != std::string::npos)
      throw SyntaxError("a block is written 'name(layer, layer, ...) [settings]'; '" + before +
                        "' before '(' is more than a name");
  }
  std::istringstream words(head);
  for (std::string w; words >> w;) (l.keyword.empty() ? l.keyword : l.args.emplace_back()) = w;
  if (l.keyword.empty()) throw SyntaxError("empty layer (two commas in a row?)");
  return l;
}

}  // namespace

std::vector<LayerText> split_layer_list(const std::string& text) {
  std::vector<LayerText> out;
  if (trim(text).empty()) return out;
  int depth = 0;
  size_t begin = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    const char c = i < text.size() ? text[i] : ',';
    if (c == '(') ++depth;
    if (c == ')' && --depth < 0)
      throw SyntaxError("')' at character " + std::to_string(i + 1) + " closes nothing: '" +
                        text.substr(0, i + 1) + "' <-");
    if (c == ',' && depth == 0) {
      // A comma at the very end is allowed, as it always was.
      if (i == text.size() && !out.empty() && trim(text.substr(begin)).empty()) break;
      out.push_back(parse_item(text, begin, i));
      begin = i + 1;
    }
  }
  if (depth > 0)
    throw SyntaxError("a '(' is never closed: '" + text + "' needs " + std::to_string(depth) +
                      " more ')'");
  return out;
}

bool parse_int(const std::string& word, int& value) {
  const auto res = std::from_chars(word.data(), word.data() + word.size(), value);
  return res.ec == std::errc() && res.ptr == word.data() + word.size() && !word.empty();
}

bool parse_shape(const std::string& word, Shape& shape) {
  Shape s;
  if (word.find('x') == std::string::npos || !parse_shape_text(word, s)) return false;
  shape = s;
  return true;
}

void expect_no_args(const LayerText& l) {
  if (!l.args.empty() || l.has_body) throw SyntaxError("'" + l.keyword + "' takes no arguments");
}

}  // namespace vd
