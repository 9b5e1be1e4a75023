// `join!` takes at most 12 futures: the error says so.

async fn thirteen() {
    let _ = hatchery::join!(
        async { 1 },
        async { 2 },
        async { 3 },
        async { 4 },
        async { 5 },
        async { 6 },
        async { 7 },
        async { 8 },
        async { 9 },
        async { 10 },
        async { 11 },
        async { 12 },
        async { 13 },
    );
}

fn main() {
    let _ = thirteen();
}
