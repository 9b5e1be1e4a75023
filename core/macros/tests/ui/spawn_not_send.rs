// A child that is not `Send` spawned into a spawning nursery: the error says which
// nurseries take it.

use std::rc::Rc;

async fn app() -> Result<(), std::io::Error> {
    hatchery::nursery(|n| async move {
        let shared = Rc::new(1);
        n.spawn(async move { Ok::<_, std::io::Error>(*shared) });
        Ok(())
    })
    .await?;
    Ok(())
}

fn main() {
    let _ = app();
}
