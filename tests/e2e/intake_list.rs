//! Finding cases: by id, by reference, and by filters with paging.

use lots_proto::v1 as pb;
use tonic::Code;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_case_is_found_by_reference_and_by_id() {
    let app = TestApp::spawn().await;
    let case = app.register(app.restaurant("k-1")).await.unwrap();
    let mut client = app.client.clone();
    let by_ref = client
        .get_case(pb::GetCaseRequest { lookup: Some(pb::get_case_request::Lookup::Reference(case.reference.clone())) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_ref.id, case.id);
    assert_eq!(app.get(&case.id).await.reference, case.reference);

    let missing =
        pb::GetCaseRequest { lookup: Some(pb::get_case_request::Lookup::Reference("NKP-1999-000001".into())) };
    assert_eq!(client.get_case(missing).await.unwrap_err().code(), Code::NotFound);
    let bad = pb::GetCaseRequest { lookup: Some(pb::get_case_request::Lookup::Reference("hej".into())) };
    let err = client.get_case(bad).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["reference"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn cases_are_listed_with_filters_and_pages() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        let mut req = app.restaurant(&format!("k-{i}"));
        if i < 3 {
            req.case_type = "bygglov".into();
        }
        if i == 4 {
            req.company.as_mut().unwrap().org_nr = "212000-0142".into();
        }
        app.register(req).await.unwrap();
    }
    let mut client = app.client.clone();
    let list = |req: pb::ListCasesRequest| {
        let mut c = client.clone();
        async move { c.list_cases(req).await.map(|r| r.into_inner()) }
    };

    let mut refs = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = list(pb::ListCasesRequest { page_size: 2, page_token: token, ..Default::default() }).await.unwrap();
        pages += 1;
        refs.extend(page.cases.into_iter().map(|c| c.reference));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    let mut sorted = refs.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(refs, sorted, "newest first");
    assert_eq!(refs.len(), 5);

    let bygglov = list(pb::ListCasesRequest { case_type: "bygglov".into(), ..Default::default() }).await.unwrap();
    assert_eq!(bygglov.cases.len(), 3);
    let by_company = list(pb::ListCasesRequest { org_nr: "2120000142".into(), ..Default::default() }).await.unwrap();
    assert_eq!(by_company.cases.len(), 1);
    let first = &by_company.cases[0];
    app.withdraw(&first.id, "dubblett").await.unwrap();
    let withdrawn =
        list(pb::ListCasesRequest { status: pb::CaseStatus::Withdrawn as i32, ..Default::default() }).await.unwrap();
    assert_eq!(withdrawn.cases.len(), 1);

    let err =
        list(pb::ListCasesRequest { page_size: 501, page_token: "x".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["page_size", "page_token"]);
    drop(client.clone());
    let _ = &mut client;
}
