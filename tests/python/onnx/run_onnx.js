// Runs one ONNX file in onnxruntime (the npm package onnxruntime-node, CPU) for vae_dist_onnx_test.py:
//   node run_onnx.js MODEL.onnx INPUTS.json   (INPUTS.json: [{name, type: float32|int64, dims, file}])
// Each input is read from its raw little-endian file; each output is written as OUTPUT_NAME.bin beside
// INPUTS.json, and one JSON line {name: dims} goes to stdout.
"use strict";
const fs = require("fs");
const path = require("path");
const ort = require("onnxruntime-node");

async function main() {
  const [model, manifest] = process.argv.slice(2);
  const inputs = JSON.parse(fs.readFileSync(manifest, "utf8"));
  const feeds = {};
  for (const i of inputs) {
    const buf = fs.readFileSync(i.file);
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    const data = i.type === "int64" ? new BigInt64Array(ab) : new Float32Array(ab);
    feeds[i.name] = new ort.Tensor(i.type, data, i.dims);
  }
  const session = await ort.InferenceSession.create(model, { executionProviders: ["cpu"] });
  const results = await session.run(feeds);
  const dims = {};
  for (const [name, t] of Object.entries(results)) {
    fs.writeFileSync(path.join(path.dirname(manifest), name + ".bin"), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    dims[name] = t.dims;
  }
  console.log(JSON.stringify(dims));
}

main().catch((e) => {
  console.error(`run_onnx: ${e.message || e}`);
  process.exit(1);
});
