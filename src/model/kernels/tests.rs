//! The kernels against burn's ops and the layers' compositions.

use super::*;
use crate::model::lrn::Lrn;
use crate::model::pool::{MaxPool, pool_out};
use burn::tensor::{Device, Distribution};

fn max_abs(a: Tensor<4>, b: Tensor<4>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn max_pool_kernel_equals_the_composition() {
    let device = Device::flex();
    for (h, w, k, s, p) in [
        (112, 112, 3, 2, 0),
        (57, 30, 3, 2, 0),
        (28, 28, 3, 1, 1),
        (14, 14, 2, 2, 0),
        (7, 9, 3, 2, 1),
        (3, 5, 3, 2, 0),
    ] {
        let x = Tensor::<4>::random([2, 3, h, w], Distribution::Normal(0.0, 1.0), &device);
        let (oh, ow) = (pool_out(h, k, s, p, true), pool_out(w, k, s, p, true));
        let fast = max_pool(&x, k, s, p, oh, ow).expect("a flex tensor");
        let composed = MaxPool::new(k, s, p, true).forward_composed(x.clone());
        assert_eq!(fast.dims(), composed.dims());
        let d = max_abs(fast, composed);
        assert!(d <= 1e-6, "{h}x{w} k{k} s{s} p{p}: {d}");
    }
}

#[test]
fn conv_kernel_equals_burns_conv2d() {
    use burn::tensor::module::conv2d as burn_conv2d;
    use burn::tensor::ops::ConvOptions;
    let device = Device::flex();
    // (cin, h, w, cout, k, stride, pad, bias): GoogLeNet's shapes and awkward ones (odd
    // sizes, padding wider than a row, more outputs than 16-row chunks, tiny images).
    let cases = [
        (3, 37, 29, 64, 7, 2, 3, true),
        (64, 14, 14, 192, 3, 1, 1, true),
        (16, 9, 11, 33, 5, 1, 2, false),
        (32, 7, 7, 128, 1, 1, 0, true),
        (5, 3, 2, 7, 3, 2, 1, true),
        (4, 1, 40, 6, 3, 1, 1, true),
        (8, 600, 3, 5, 1, 1, 0, false),
        (3, 2, 2, 4, 5, 1, 2, true),
        // Winograd (3×3, stride 1, pad 1, planes of 14×14 and more): odd sides (clipped
        // edge blocks), one row, no bias, more tiles than one chunk.
        (24, 15, 17, 40, 3, 1, 1, false),
        (3, 1, 300, 5, 3, 1, 1, true),
        (17, 29, 28, 19, 3, 1, 1, true),
        (64, 56, 56, 24, 3, 1, 1, true),
        // Small planes, whose tiles span the images of a batch: 1×1 on 14×14 and 7×7, a
        // direct 3×3 on 7×7, a Winograd 3×3 whose chunks end mid-image.
        (480, 14, 14, 40, 1, 1, 0, true),
        (40, 7, 7, 48, 1, 1, 0, true),
        (32, 7, 7, 20, 3, 1, 1, true),
        (96, 14, 14, 20, 3, 1, 1, true),
    ];
    for ((cin, h, w, cout, k, s, p, with_bias), batch) in
        cases.into_iter().flat_map(|c| [(c, 1), (c, 2), (c, 5)])
    {
        let x = Tensor::<4>::random([batch, cin, h, w], Distribution::Normal(0.0, 1.0), &device);
        let weight =
            Tensor::<4>::random([cout, cin, k, k], Distribution::Normal(0.0, 0.3), &device);
        let bias =
            with_bias.then(|| Tensor::<1>::random([cout], Distribution::Normal(0.0, 1.0), &device));
        let reference = burn_conv2d(
            x.clone(),
            weight.clone(),
            bias.clone(),
            ConvOptions::new([s, s], [p, p], [1, 1], 1),
        );
        for relu in [false, true] {
            let fast =
                conv2d(&x, &weight, bias.as_ref(), [s, s], [p; 4], relu).expect("flex tensors");
            let expected = if relu {
                burn::tensor::activation::relu(reference.clone())
            } else {
                reference.clone()
            };
            assert_eq!(
                fast.dims(),
                expected.dims(),
                "{batch}×{cin}x{h}x{w} -> {cout} k{k} s{s} p{p}"
            );
            let d = max_abs(fast, expected);
            assert!(
                d < 1e-4,
                "{batch}×{cin}x{h}x{w} -> {cout} k{k} s{s} p{p} relu {relu}: {d}"
            );
        }
    }
}

#[test]
fn a_nan_input_stays_nan() {
    use burn::tensor::module::conv2d as burn_conv2d;
    use burn::tensor::ops::ConvOptions;
    let device = Device::flex();
    // (batch, cin, side, k, pad): one image, direct; a 1×1 whose tiles span the images of a
    // batch; a Winograd 3×3. A NaN in one input must come out as NaN (never −∞ or 0)
    // wherever burn's convolution, and its ReLU, have one.
    for (batch, cin, side, k, p) in [(1, 3, 9, 3, 0), (5, 40, 7, 1, 0), (2, 24, 14, 3, 1)] {
        let x = Tensor::<4>::random(
            [batch, cin, side, side],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let mut values = x.to_data().try_to_vec::<f32>().unwrap();
        values[(batch - 1) * cin * side * side + 3 * side + 3] = f32::NAN;
        let x = Tensor::<4>::from_data(
            burn::tensor::TensorData::new(values, [batch, cin, side, side]),
            &device,
        );
        let w = Tensor::<4>::random([8, cin, k, k], Distribution::Normal(0.0, 0.3), &device);
        let conv = burn_conv2d(
            x.clone(),
            w.clone(),
            None,
            ConvOptions::new([1, 1], [p, p], [1, 1], 1),
        );
        for relu in [false, true] {
            let reference = if relu {
                burn::tensor::activation::relu(conv.clone())
            } else {
                conv.clone()
            };
            let fast = conv2d(&x, &w, None, [1, 1], [p; 4], relu).unwrap();
            let (fast, reference) = (
                fast.to_data().try_to_vec::<f32>().unwrap(),
                reference.to_data().try_to_vec::<f32>().unwrap(),
            );
            let nans = reference.iter().filter(|v| v.is_nan()).count();
            assert!(nans > 0, "the reference has no NaN");
            assert!(
                fast.iter().all(|v| !v.is_infinite()),
                "batch {batch} k{k} relu {relu}: a NaN became ±∞"
            );
            for (i, (f, r)) in fast.iter().zip(&reference).enumerate() {
                assert!(
                    !r.is_nan() || f.is_nan(),
                    "batch {batch} k{k} relu {relu}: output {i} is {f}, burn's is NaN"
                );
            }
        }
    }
}

#[test]
fn winograd_weights_follow_the_weights() {
    use burn::tensor::module::conv2d as burn_conv2d;
    use burn::tensor::ops::ConvOptions;
    let device = Device::flex();
    let x = Tensor::<4>::random([1, 8, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<4>::random([12, 8, 3, 3], Distribution::Normal(0.0, 0.3), &device);
    let reference = |w: &Tensor<4>| {
        burn_conv2d(
            x.clone(),
            w.clone(),
            None,
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        )
    };
    let first = conv2d(&x, &w, None, [1, 1], [1; 4], false).unwrap();
    assert!(max_abs(first.clone(), reference(&w)) < 1e-4);
    // Same weights again: the cached transform, the same output.
    assert_eq!(
        max_abs(conv2d(&x, &w, None, [1, 1], [1; 4], false).unwrap(), first),
        0.0
    );
    // New weights made from the old tensor (an update that could reuse its buffer in
    // place if nothing else held it): the new weights' output, never the cached one.
    let w = w.mul_scalar(-2.0);
    let d = max_abs(
        conv2d(&x, &w, None, [1, 1], [1; 4], false).unwrap(),
        reference(&w),
    );
    assert!(d < 1e-4, "stale Winograd weights: {d}");
    let w = w.add_scalar(0.5);
    let d = max_abs(
        conv2d(&x, &w, None, [1, 1], [1; 4], false).unwrap(),
        reference(&w),
    );
    assert!(d < 1e-4, "stale Winograd weights: {d}");
}

#[test]
fn the_network_on_kernels_equals_the_compositions() {
    use crate::model::config::{GoogLeNetConfig, Variant};
    let device = Device::flex();
    let model = GoogLeNetConfig::new()
        .with_num_classes(10)
        .with_variant(Variant::Bvlc)
        .init(&device);
    // Batch 2 at an odd size: every stage, ragged tiles, both images in one call.
    let x = Tensor::<4>::random([2, 3, 99, 99], Distribution::Normal(0.0, 40.0), &device);
    let mut fast = x.clone();
    let mut slow = x.clone().autodiff();
    let close = |fast: &Tensor<4>, slow: &Tensor<4>, what: &str| {
        let reference = Tensor::<4>::from_data(slow.clone().into_data(), &device);
        let scale: f32 = reference.clone().abs().max().into_scalar();
        let d = max_abs(fast.clone(), reference) / scale.max(1e-6);
        assert!(d < 1e-5, "{what}: relative difference {d}");
    };
    for stage in model.stages() {
        // Every stage runs on the kernels on the fast side (a block hands its output back
        // here, its branches run on the pool), and on none on the reference side: were the
        // kernels bypassed, both sides would take the compositions and agree all the same.
        let (name, taken) = (stage.name(), TAKEN.get());
        let (f, fast_branches) = model.stage(stage, fast);
        assert!(
            TAKEN.get() > taken,
            "{name}: the fast side did not take the kernels"
        );
        let taken = TAKEN.get();
        let (s, slow_branches) = model.stage(stage, slow);
        assert_eq!(
            TAKEN.get(),
            taken,
            "{name}: the reference side took the kernels"
        );
        close(&f, &s, name);
        // A block's branches (views of its output on the kernel path) for the explorer.
        for (i, (a, b)) in fast_branches
            .iter()
            .flatten()
            .zip(slow_branches.iter().flatten())
            .enumerate()
        {
            close(a, b, &format!("{name} branch {i}"));
        }
        (fast, slow) = (f, s);
    }
}

#[test]
fn a_block_output_refuses_a_second_writer() {
    let device = Device::flex();
    let x = Tensor::<4>::random([1, 4, 5, 5], Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<4>::random([3, 4, 1, 1], Distribution::Normal(0.0, 1.0), &device);
    let conv = Conv::new(&x, &w, None, [1, 1], [0; 4]).unwrap();
    let out = Concat::new([1, 6, 5, 5]);
    out.write(&conv, 0, false);
    out.write(&conv, 3, false);
    let twice =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| out.write(&conv, 2, false)));
    assert!(twice.is_err(), "channels 2..5 overlap 0..3 and 3..6");
    let too_far = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Concat::new([1, 6, 5, 5]).write(&conv, 4, false)
    }));
    assert!(too_far.is_err(), "channels 4..7 of 6");
    let y = out.into_tensor();
    let direct = conv2d(&x, &w, None, [1, 1], [0; 4], false).unwrap();
    assert_eq!(max_abs(y.clone().narrow(1, 0, 3), direct.clone()), 0.0);
    assert_eq!(max_abs(y.narrow(1, 3, 3), direct), 0.0);
}

#[test]
fn lrn_kernel_equals_the_composition() {
    let device = Device::flex();
    let x = Tensor::<4>::random([2, 9, 5, 3], Distribution::Normal(0.0, 30.0), &device);
    for beta in [0.75, 0.6] {
        let layer = Lrn {
            beta,
            ..Lrn::caffe()
        };
        let fast = lrn(&x, layer.size, layer.alpha, layer.beta, layer.k).expect("a flex tensor");
        let d = max_abs(fast, layer.forward_composed(x.clone()));
        assert!(d < 1e-5, "beta {beta}: {d}");
    }
}

#[test]
fn autodiff_tensors_take_the_composition() {
    let x = Tensor::<4>::random(
        [1, 2, 6, 6],
        Distribution::Normal(0.0, 1.0),
        &Device::flex(),
    )
    .autodiff();
    assert!(max_pool(&x, 3, 2, 0, 3, 3).is_none());
    assert!(lrn(&x, 5, 1e-4, 0.75, 1.0).is_none());
    let w = Tensor::<4>::random(
        [3, 2, 3, 3],
        Distribution::Normal(0.0, 1.0),
        &Device::flex(),
    );
    assert!(conv2d(&x, &w, None, [1, 1], [1; 4], true).is_none());
}
