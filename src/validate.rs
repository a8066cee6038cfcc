//! Range checks shared by every configuration section's `validate` (a
//! leaf: imports nothing of the crate, so sections at every layer can use
//! it without importing [`crate::config`], which sits on top of them).

/// Checks that `section.name = v` lies in `lo..=hi`; the error names the
/// field and the bounds, as every section's `validate` reports them.
pub fn check_range<T: PartialOrd + std::fmt::Display>(
    section: &str,
    name: &str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), String> {
    if v < lo || v > hi {
        return Err(format!(
            "{section}.{name} = {v}: must be between {lo} and {hi}"
        ));
    }
    Ok(())
}
