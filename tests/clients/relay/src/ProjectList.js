// The tenant's projects, a refetchable fragment on Query with a connection both ways.
import { graphql } from 'relay-runtime';

export const ProjectList = graphql`
  fragment ProjectList_query on Query
  @refetchable(queryName: "ProjectListPaginationQuery")
  @argumentDefinitions(
    first: { type: "Int" }
    after: { type: "String" }
    last: { type: "Int" }
    before: { type: "String" }
  ) {
    projects(first: $first, after: $after, last: $last, before: $before)
      @connection(key: "ProjectList_projects") {
      edges {
        node {
          id
          ...ProjectTasks_project
        }
      }
    }
  }
`;
