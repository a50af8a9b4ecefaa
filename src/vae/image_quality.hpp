// Reconstruction quality of one image against its reference: PSNR and SSIM as scikit-image's
// peak_signal_noise_ratio and structural_similarity compute them (the settings are below).
// Images are [C, H, W] row-major float, in the same units, computed in double.
#pragma once

namespace vd {

// 10 log10(data_range^2 / MSE), the MSE over all C*H*W values (skimage's
// peak_signal_noise_ratio(x, y, data_range=data_range)); +inf for identical images.
double psnr(const float* x, const float* y, int c, int h, int w, double data_range);

// skimage's structural_similarity(x, y, data_range=data_range, channel_axis=0) with its
// defaults: a uniform 7 x 7 window (gaussian_weights=False), K1 = 0.01, K2 = 0.03, the sample
// covariance (normalised by 49 / 48), the SSIM map's mean over the positions whose window lies
// inside the image (skimage crops 3 pixels from each border), and the mean over channels.
// Throws vd::ShapeError when h or w is below 7.
double ssim(const float* x, const float* y, int c, int h, int w, double data_range);

inline constexpr int kSsimWindow = 7;

}  // namespace vd
