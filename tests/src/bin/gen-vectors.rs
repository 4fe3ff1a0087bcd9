//! Regenerates tests/vectors/tickets.json. The vectors test fails when the file and this output differ, so
//! any change to the format shows up as a diff to review.

fn main() -> std::io::Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/tickets.json");
    std::fs::write(&path, tests::vectors::generate_json())?;
    println!("wrote {}", path.display());
    Ok(())
}
