//! The CLI's fine-tune data set: a folder with one sub-folder of images per class, the folder
//! names being the labels (torchvision's `ImageFolder` layout). The page builds its data set
//! in memory instead ([`crate::train::Dataset`]).

use std::path::{Path, PathBuf};

use crate::files::{self, FileError};
use crate::labels::{self, LabelError};
use crate::preprocess::ImageError;
use crate::text;
use crate::train::{self, Example};

/// Why a data set folder cannot be trained on.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("reading {path}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: expected one sub-folder of images per class, at least 2, found {found}")]
    TooFewClasses { path: String, found: usize },
    #[error("class folder {path}")]
    BadName { path: String, source: LabelError },
    #[error(transparent)]
    ClassFolder(#[from] std::io::Error),
    #[error("class folder {path} has no images")]
    NoImages { path: String },
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}")]
    Image { path: String, source: ImageError },
}

/// The classes of a data set folder, sorted by name, and their image files.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    /// The class folders' names: the trained model's labels.
    pub labels: Vec<String>,
    /// Each class's image files, sorted, in the order of `labels`.
    pub files: Vec<Vec<PathBuf>>,
}

impl ImageFolder {
    /// The class folders of `dir` and their files. The names are checked before any image is
    /// read: they become the model's labels, and a name the loader would refuse (blank,
    /// control characters, over 200 characters) would make the trained model unloadable.
    pub fn read(dir: &Path) -> Result<ImageFolder, DatasetError> {
        let mut classes: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| DatasetError::Folder {
                path: text::path(dir),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        classes.sort();
        if classes.len() < 2 {
            return Err(DatasetError::TooFewClasses {
                path: text::path(dir),
                found: classes.len(),
            });
        }
        let labels: Vec<String> = classes
            .iter()
            .map(|c| {
                c.file_name()
                    .expect("a folder has a name")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        for (i, (name, class)) in labels.iter().zip(&classes).enumerate() {
            labels::check_label(i, name).map_err(|source| DatasetError::BadName {
                path: text::path(class),
                source,
            })?;
        }
        let mut files = Vec::new();
        for class in &classes {
            let mut images: Vec<PathBuf> = std::fs::read_dir(class)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            images.sort();
            if images.is_empty() {
                return Err(DatasetError::NoImages {
                    path: text::path(class),
                });
            }
            files.push(images);
        }
        Ok(ImageFolder { labels, files })
    }

    /// Every image file, class by class.
    pub fn images(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().flatten().map(PathBuf::as_path)
    }

    /// Every image read and decoded as a training example, labelled by its class; the first
    /// that fails is named.
    pub fn examples(&self) -> Result<Vec<Example>, DatasetError> {
        let mut examples = Vec::new();
        for (label, images) in self.files.iter().enumerate() {
            for f in images {
                let bytes = files::read_image(f)?;
                let example = train::example_from_bytes(&bytes, label).map_err(|source| {
                    DatasetError::Image {
                        path: text::path(f),
                        source,
                    }
                })?;
                examples.push(example);
            }
        }
        Ok(examples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system's temporary one, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir()
                .join(format!("googlenet-dataset-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn file(&self, path: &str) {
            let p = self.0.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"not read until examples()").unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn classes_are_the_sorted_folders_and_each_needs_an_image() {
        let d = TempDir::new("sorted");
        d.file("tulips/2.jpg");
        d.file("tulips/1.jpg");
        d.file("roses/a.png");
        d.file("stray.txt");
        let set = ImageFolder::read(&d.0).unwrap();
        assert_eq!(set.labels, ["roses", "tulips"]);
        let names: Vec<_> = set
            .images()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.png", "1.jpg", "2.jpg"]);
        std::fs::create_dir(d.0.join("violets")).unwrap();
        let err = ImageFolder::read(&d.0).unwrap_err();
        assert!(matches!(err, DatasetError::NoImages { .. }), "{err}");
        assert!(err.to_string().ends_with("violets has no images"), "{err}");
    }

    #[test]
    fn one_class_is_not_a_data_set() {
        let d = TempDir::new("one");
        d.file("roses/a.png");
        let err = ImageFolder::read(&d.0).unwrap_err();
        assert!(
            matches!(err, DatasetError::TooFewClasses { found: 1, .. }),
            "{err}"
        );
    }
}
