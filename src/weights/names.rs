//! Key names: Caffe's layer names by PyTorch key, which tensors are the aux heads', and the
//! project's metadata keys.

/// Caffe names of the stem convs, by PyTorch module name.
const CAFFE_STEM: [(&str, &str); 3] = [
    ("conv1", "conv1/7x7_s2"),
    ("conv2", "conv2/3x3_reduce"),
    ("conv3", "conv2/3x3"),
];
/// Caffe names of an Inception block's convs, in the order of `Inception`'s fields.
pub(super) const CAFFE_BRANCH: [(&str, &str); 6] = [
    ("branch1", "1x1"),
    ("branch2.0", "3x3_reduce"),
    ("branch2.1", "3x3"),
    ("branch3.0", "5x5_reduce"),
    ("branch3.1", "5x5"),
    ("branch4.1", "pool_proj"),
];
/// Caffe's train_val names of the aux heads' layers (`loss1/*` after 4a, `loss2/*` after 4d).
const CAFFE_AUX: [(&str, &str); 3] = [("conv.conv", "conv"), ("fc1", "fc"), ("fc2", "classifier")];

/// Translate a PyTorch key to Caffe's name, or `None` for tensors Caffe does not have
/// (BatchNorm).
pub fn caffe_key(pytorch_key: &str) -> Option<String> {
    let (module, param) = pytorch_key.rsplit_once('.')?;
    if !matches!(param, "weight" | "bias") {
        return None;
    }
    let layer = if let Some(m) = module.strip_suffix(".conv") {
        if let Some((_, c)) = CAFFE_STEM.iter().find(|(p, _)| *p == m) {
            c.to_string()
        } else if let Some(rest) = m.strip_prefix("inception") {
            let (block, branch) = rest.split_once('.')?;
            let (_, c) = CAFFE_BRANCH.iter().find(|(p, _)| *p == branch)?;
            format!("inception_{block}/{c}")
        } else {
            aux_caffe(module)?
        }
    } else if module == "fc" {
        "loss3/classifier".to_string()
    } else {
        aux_caffe(module)?
    };
    Some(format!("{layer}.{param}"))
}

fn aux_caffe(module: &str) -> Option<String> {
    let (head, rest) = module.split_once('.')?;
    let n = match head {
        "aux1" => 1,
        "aux2" => 2,
        _ => return None,
    };
    let (_, c) = CAFFE_AUX.iter().find(|(p, _)| *p == rest)?;
    Some(format!("loss{n}/{c}"))
}

/// A key of an aux head's tensor (project and PyTorch names).
pub(super) fn is_aux_key(k: &str) -> bool {
    k.starts_with("aux1.") || k.starts_with("aux2.")
}

pub(super) const META_VARIANT: &str = "googlenet.variant";
pub(super) const META_CLASSES: &str = "googlenet.num_classes";
pub(super) const META_TRANSFORM: &str = "googlenet.transform_input";
pub(super) const META_AUX: &str = "googlenet.aux_trained";
pub(super) const META_LABELS: &str = "googlenet.labels";
/// Every `googlenet.*` metadata key; other `googlenet.` keys are refused as likely typos.
pub(super) const META_KEYS: [&str; 5] = [
    META_VARIANT,
    META_CLASSES,
    META_TRANSFORM,
    META_AUX,
    META_LABELS,
];

#[cfg(test)]
mod tests {
    use super::caffe_key;

    #[test]
    fn caffe_names() {
        assert_eq!(
            caffe_key("conv1.conv.weight").as_deref(),
            Some("conv1/7x7_s2.weight")
        );
        assert_eq!(
            caffe_key("conv3.conv.bias").as_deref(),
            Some("conv2/3x3.bias")
        );
        assert_eq!(
            caffe_key("inception4e.branch3.0.conv.weight").as_deref(),
            Some("inception_4e/5x5_reduce.weight")
        );
        assert_eq!(
            caffe_key("inception5b.branch4.1.conv.bias").as_deref(),
            Some("inception_5b/pool_proj.bias")
        );
        assert_eq!(
            caffe_key("fc.weight").as_deref(),
            Some("loss3/classifier.weight")
        );
        assert_eq!(
            caffe_key("aux2.fc2.bias").as_deref(),
            Some("loss2/classifier.bias")
        );
        assert_eq!(
            caffe_key("aux1.conv.conv.weight").as_deref(),
            Some("loss1/conv.weight")
        );
        assert_eq!(caffe_key("conv1.bn.weight"), None);
    }
}
