fn main() {
    let src = std::fs::read(std::env::args().nth(1).unwrap()).unwrap();
    let (_, p) = tfc_ir::parse_bytes(&src).unwrap();
    let t = std::time::Instant::now();
    let r = tfc_ir::check(&p);
    println!("{:?} {:?}", t.elapsed(), r.err().map(|d| d.iter().map(|d| d.code).collect::<Vec<_>>()));
}
