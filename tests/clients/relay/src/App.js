// The page's query: every fragment above, spread where the screen needs it.
import { graphql } from 'relay-runtime';

export const App = graphql`
  query AppQuery {
    viewer {
      ...Viewer_user
    }
    ...ProjectList_query
  }
`;
