// A project's tasks, paginated both ways: `loadNext` sends first/after, `loadPrevious`
// sends last/before, and the refetch query reaches the project again through `node(id:)`.
// No default page size: Relay's runtime replaces a null variable with its default, so
// paging backwards (first: null, last: n) would send both, which the server refuses.
import { graphql } from 'relay-runtime';

export const ProjectTasks = graphql`
  fragment ProjectTasks_project on Project
  @refetchable(queryName: "ProjectTasksRefetchQuery")
  @argumentDefinitions(
    first: { type: "Int" }
    after: { type: "String" }
    last: { type: "Int" }
    before: { type: "String" }
  ) {
    id
    name
    tasks(first: $first, after: $after, last: $last, before: $before)
      @connection(key: "ProjectTasks_tasks") {
      totalCount
      edges {
        node {
          id
          title
          status
          dueDate
        }
      }
    }
  }
`;
