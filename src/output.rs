//! One way out. Every format that turns results into bytes (the run's
//! reports, a comparison's table, Markdown and JSON, the CI exports) is a
//! [`Render`] of the value it formats. Rendering only returns bytes: writing
//! files, printing and drawing charts are the caller's job.

/// A file format for values of type `T`.
pub trait Render<T: ?Sized> {
    /// The name `--format` uses.
    fn name(&self) -> &'static str;
    /// The file it is written to in a run directory, for formats that have one.
    fn file_name(&self) -> Option<&'static str> {
        None
    }
    fn render(&self, value: &T) -> anyhow::Result<Vec<u8>>;
}

/// Renders `value` as text (every format here is UTF-8).
pub fn text<T: ?Sized>(format: &dyn Render<T>, value: &T) -> anyhow::Result<String> {
    Ok(String::from_utf8(format.render(value)?)?)
}
