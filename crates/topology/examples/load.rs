fn main() {
    for arg in std::env::args().skip(1) {
        match vpnsim_topology::load_file(std::path::Path::new(&arg)) {
            Ok(s) => println!("ok: {} hosts", s.topology.hosts.len()),
            Err(vpnsim_topology::LoadError::Invalid { diagnostics, .. }) => {
                for d in diagnostics {
                    println!("{d}")
                }
            }
            Err(e) => println!("{e}"),
        }
    }
}
